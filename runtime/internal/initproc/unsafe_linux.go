package initproc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The only calls of this package that need unsafe: system calls that take
// a pointer to an array x/sys/unix does not wrap per-thread.

// setgroups sets the calling thread's supplementary groups (x/sys/unix's
// Setgroups changes every thread, through the Go runtime).
func setgroups(gids []uint32) error {
	var p unsafe.Pointer
	if len(gids) > 0 {
		p = unsafe.Pointer(&gids[0])
	}
	for {
		_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(p), 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// loadSeccomp installs prog, an array of struct sock_filter, on the calling
// thread.
func loadSeccomp(prog []byte, flags uint) error {
	if len(prog)%8 != 0 {
		return errInvalidFilter
	}
	fprog := unix.SockFprog{
		Len:    uint16(len(prog) / 8),
		Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0])),
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return &seccompError{e}
		}
		return nil
	}
}
