//go:build !linux

package server

import (
	"errors"
	"syscall"
)

func setRcvLowat(syscall.RawConn, int) error { return errors.New("SO_RCVLOWAT: Linux only") }
