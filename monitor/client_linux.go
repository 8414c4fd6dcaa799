package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// SocketPath is where the monitor of a run root listens.
func SocketPath(runRoot string) string { return filepath.Join(runRoot, "monitor.sock") }

// LockPath is the file the living monitor holds locked.
func LockPath(runRoot string) string { return filepath.Join(runRoot, "monitor.lock") }

// Dial connects to the monitor of runRoot, starting it with a command
// from spawn when none runs. The new monitor says it is ready by writing a
// byte to the file it gets as descriptor 3: no polling, no sleeping.
func Dial(ctx context.Context, runRoot string, spawn func() *exec.Cmd) (*Conn, error) {
	c, err := dial(ctx, runRoot)
	if err == nil {
		return c, nil
	}
	// A monitor that is exiting (idle, or replaced by a new binary) may
	// refuse us between our spawn and our dial: spawn again, a few times.
	for range 3 {
		if err := Spawn(ctx, spawn()); err != nil {
			return nil, err
		}
		if c, err = dial(ctx, runRoot); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("connect to the container monitor: %w", err)
}

func dial(ctx context.Context, runRoot string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", SocketPath(runRoot))
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

// Spawn starts a monitor, detached in its own session, and waits until it
// is ready (or has found another one running, which is as good).
func Spawn(ctx context.Context, cmd *exec.Cmd) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the container monitor: %w", err)
	}
	w.Close()
	go cmd.Wait() // the monitor outlives us; this only reaps it if it exits early
	var b [1]byte
	n, _ := r.Read(b[:])
	if n != 1 {
		return errors.New("the container monitor exited before it was ready (see monitor.log in the run root)")
	}
	return nil
}

// Alive reports whether a monitor holds runRoot's lock.
func Alive(runRoot string) bool {
	f, err := os.Open(LockPath(runRoot))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// Stop asks the monitor of runRoot, if one runs, to exit now, and waits
// until it has. A monitor refuses while it still watches a container; Stop
// asks again every few milliseconds until ctx ends (after a forced removal
// of every container, the monitor lets go of them a moment later). System
// reset uses it so that no monitor outlives the run root it served.
func Stop(ctx context.Context, runRoot string) error {
	for {
		if !Alive(runRoot) {
			return nil
		}
		busy, err := askExit(ctx, runRoot)
		if err != nil {
			return fmt.Errorf("stop the container monitor: %w", err)
		}
		if !busy {
			return waitGone(ctx, runRoot)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop the container monitor: it still watches containers: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// askExit asks the monitor to exit; busy says it refused because it
// watches containers. A monitor that does not listen is already exiting
// (or serves a run root whose socket is gone): waiting for its lock is
// all there is to do.
func askExit(ctx context.Context, runRoot string) (busy bool, err error) {
	c, err := dial(ctx, runRoot)
	if err != nil {
		return false, nil
	}
	defer c.Close()
	var resp Response
	if c.WriteJSON(Request{Op: "exit"}) != nil || c.ReadJSON(&resp) != nil {
		// Closed unanswered: it stopped listening as we connected (it was
		// idle, or hands over to a new binary).
		return false, nil
	}
	if resp.Error == "" {
		return false, nil
	}
	if resp.Class == errdefs.ErrConflict.Error() {
		return true, nil
	}
	return false, errors.New(resp.Error)
}

// waitGone waits until no process holds runRoot's monitor lock.
func waitGone(ctx context.Context, runRoot string) error {
	f, err := os.Open(LockPath(runRoot))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		defer f.Close()
		done <- unix.Flock(int(f.Fd()), unix.LOCK_SH)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("wait for the container monitor to exit: %w", ctx.Err())
	}
}
