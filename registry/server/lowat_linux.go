package server

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setRcvLowat sets the socket's SO_RCVLOWAT: the kernel wakes a reader
// waiting for data (and epoll reports the socket readable) once n bytes
// are there, or the connection ends.
func setRcvLowat(rc syscall.RawConn, n int) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, n)
	})
	if err != nil {
		return err
	}
	return serr
}
