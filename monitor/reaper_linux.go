package monitor

import (
	"os"
	"os/signal"
	"sync"
	"unsafe"

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
	defer r.mu.Unlock()
	r.watched[pid] = ch
	r.collect(pid, ch) // it may have exited already
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
//
// It asks the kernel which children have exited, without collecting them
// (waitid with WNOWAIT), and collects those it watches: a cost per exit,
// where asking each watched process in turn cost a system call per
// container on every exit and every start (a thousand, with a thousand
// containers). An exited child it does not watch hides those behind it
// from that question: then, and when the kernel says there is no child
// while some are watched, it asks each in turn.
func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.watched) > 0 {
		pid, err := exitedChild()
		if err == unix.EINTR {
			continue
		}
		if err != nil && err != unix.ECHILD {
			break
		}
		ch, ok := r.watched[pid]
		if err == unix.ECHILD || (pid != 0 && !ok) {
			r.collectEach()
			return
		}
		if pid == 0 {
			return // nothing exited
		}
		if !r.collect(pid, ch) {
			r.collectEach() // exited, yet not collected: ask each
			return
		}
	}
}

// collectEach asks every watched process in turn.
func (r *Reaper) collectEach() {
	for pid, ch := range r.watched {
		r.collect(pid, ch)
	}
}

// collect waits for pid if it has exited, without blocking, and tells ch;
// a pid that is no child of this process (any more) is reported exited
// with status 255. It reports whether pid was collected.
func (r *Reaper) collect(pid int, ch chan unix.WaitStatus) bool {
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if err == unix.EINTR {
		got, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
	if got != pid && err != unix.ECHILD {
		return false
	}
	if err == unix.ECHILD {
		ws = unix.WaitStatus(255 << 8)
	}
	ch <- ws
	delete(r.watched, pid)
	return true
}

// childInfo is siginfo_t as waitid fills it for a child.
type childInfo struct {
	signo, errno, code int32
	_                  int32
	pid                int32
	uid                uint32
	status             int32
	_                  [100]byte
}

// exitedChild returns a child of this process that has exited, without
// collecting it, or 0 if none has.
func exitedChild() (int, error) {
	var info childInfo
	_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_ALL, 0, uintptr(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(info.pid), nil
}

// ExitCode turns a wait status into a shell's exit code (128+n for signal n).
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
