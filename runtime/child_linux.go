package runtime

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// child is a process this one started with syscall.ForkExec: its pid, and a
// pidfd that clone gave us (so signals never reach a recycled pid). It is
// used instead of os.Process, whose first start in a process forks an extra
// probe child to check for pidfd support.
type child struct {
	pid   int
	pidfd int
}

func (c *child) kill() error {
	return unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0)
}

// wait reaps the child and returns its exit status (128+n when killed by
// signal n).
func (c *child) wait() (int, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("wait for %d: %w", c.pid, err)
		}
		break
	}
	c.release()
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

func (c *child) release() {
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
}
