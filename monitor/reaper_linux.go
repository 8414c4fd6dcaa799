package monitor

import (
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// Reaper waits for the processes it is told about. The process using it
// becomes a child subreaper, so that a container init started through an
// external runtime (whose own process exits after create) is re-parented
// to it and can be waited for too.
type Reaper struct {
	mu      sync.Mutex
	watched map[int]chan unix.WaitStatus
	sigs    chan os.Signal
}

// NewReaper makes the calling process a subreaper and starts reaping.
func NewReaper() (*Reaper, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", err)
	}
	r := &Reaper{watched: map[int]chan unix.WaitStatus{}, sigs: make(chan os.Signal, 1)}
	signal.Notify(r.sigs, unix.SIGCHLD)
	go r.loop()
	return r, nil
}

// Watch returns a channel that receives pid's wait status once it exits.
// pid must be a child (or re-parented orphan) of this process.
func (r *Reaper) Watch(pid int) <-chan unix.WaitStatus {
	ch := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	r.watched[pid] = ch
	r.mu.Unlock()
	r.reap() // it may have exited already
	return ch
}

// Count is the number of processes being watched.
func (r *Reaper) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.watched)
}

func (r *Reaper) loop() {
	for range r.sigs {
		r.reap()
	}
}

// reap collects every watched process that has exited. It never waits for
// an unwatched child, which belongs to whoever started it.
func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, ch := range r.watched {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			got, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		if got == pid || err == unix.ECHILD {
			if err == unix.ECHILD {
				ws = unix.WaitStatus(255 << 8)
			}
			ch <- ws
			delete(r.watched, pid)
		}
	}
}

// ExitCode turns a wait status into a shell's exit code (128+n for signal n).
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
