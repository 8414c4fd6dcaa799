//go:build !linux

package registry

import "errors"

func mountTmpfs(string) error { return errors.New("mounting a tmpfs needs Linux") }

func unmount(string) error { return nil }
