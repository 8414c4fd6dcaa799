package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/signals"
	"github.com/berth-dev/berth/logs"
	"github.com/berth-dev/berth/monitor"
	"github.com/berth-dev/berth/snapshot"
)

// Streams are the client's ends of an attached container's stdio.
type Streams struct {
	Stdin          io.Reader // nil: no input
	Stdout, Stderr io.Writer
	// Signals, if not nil, are forwarded to the container while attached.
	Signals <-chan os.Signal
	// Resize, if not nil, carries the client terminal's sizes (rows,
	// columns) to a container's terminal.
	Resize <-chan [2]uint16
}

// StartContainer starts a created or exited container. With streams, it
// stays attached until the container exits and returns its exit status;
// without, it returns once the process runs.
func (e *Engine) StartContainer(ctx context.Context, ref string, streams *Streams) (int, error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return 0, err
	}
	return e.StartCreated(ctx, c, streams)
}

// StartCreated is StartContainer for the container c as CreateContainer
// returned it (run: create, then start), without reading it again.
func (e *Engine) StartCreated(ctx context.Context, c *container.Container, streams *Streams) (int, error) {
	if c.State.Running {
		if streams == nil {
			return 0, nil // docker start of a running container is a no-op
		}
		return e.AttachContainer(ctx, c.ID, streams)
	}
	e.mu.Lock()
	run := e.runs[c.ID]
	delete(e.runs, c.ID)
	e.mu.Unlock()
	mounted := run.mounted
	req := monitor.Request{Op: "start", ID: c.ID, Attach: streams != nil, Stdin: streams != nil && streams.Stdin != nil, RootMounted: mounted}
	var conn *monitor.Conn
	var err error
	asked := false
	if prep := run.prep; prep != nil {
		var resp monitor.Response
		if conn, resp, asked = prep.start(c, req); asked {
			if err = responseErr(resp); err != nil {
				conn.Close()
			}
		}
	}
	if !asked {
		conn, _, err = e.ask(ctx, req)
	}
	if err != nil {
		if mounted && !errdefs.IsConflict(err) {
			// The monitor unmounts what it was given when the start fails;
			// one that never got the request did not.
			snapshot.Unmount(filepath.Join(e.runDir(c.ID), "rootfs"))
		}
		return 0, fmt.Errorf("start container %s: %w", c.DisplayName(), err)
	}
	defer conn.Close()
	if streams == nil {
		return 0, nil
	}
	return e.pump(ctx, c.ID, conn, streams)
}

// AttachContainer attaches to a running container's stdio until it exits.
func (e *Engine) AttachContainer(ctx context.Context, ref string, streams *Streams) (int, error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return 0, err
	}
	if !c.State.Running {
		return 0, errdefs.Conflict("You cannot attach to a stopped container, start it first")
	}
	conn, _, err := e.ask(ctx, monitor.Request{Op: "attach", ID: c.ID, Attach: true, Stdin: streams.Stdin != nil})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return e.pump(ctx, c.ID, conn, streams)
}

// pump moves frames between an attached connection and the client's
// streams until the exit frame.
func (e *Engine) pump(ctx context.Context, id string, conn *monitor.Conn, s *Streams) (int, error) {
	if s.Stdin != nil {
		go func() {
			io.Copy(monitor.FrameWriter{C: conn, Typ: monitor.FrameStdin}, s.Stdin)
			conn.WriteFrame(monitor.FrameStdin, nil)
		}()
	}
	if s.Resize != nil {
		go func() {
			for sz := range s.Resize {
				var b [4]byte
				binary.BigEndian.PutUint16(b[0:2], sz[0])
				binary.BigEndian.PutUint16(b[2:4], sz[1])
				conn.WriteFrame(monitor.FrameResize, b[:])
			}
		}()
	}
	if s.Signals != nil {
		go func() {
			for sig := range s.Signals {
				if n, ok := sig.(unix.Signal); ok {
					conn.WriteFrame(monitor.FrameSignal, []byte{byte(n)})
				}
			}
		}()
	}
	for {
		typ, p, err := conn.ReadFrame()
		if err != nil {
			return 0, fmt.Errorf("container %s: lost the monitor: %w", id[:12], err)
		}
		switch typ {
		case monitor.FrameStdout:
			s.Stdout.Write(p)
		case monitor.FrameStderr:
			s.Stderr.Write(p)
		case monitor.FrameExit:
			if len(p) == 4 {
				return int(binary.BigEndian.Uint32(p)), nil
			}
			return 0, nil
		}
	}
}

// WaitContainer waits until the container is not running (condition
// "not-running", the default, or "next-exit") or removed ("removed"), and
// returns its exit status.
func (e *Engine) WaitContainer(ctx context.Context, ref, condition string) (int, error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return 0, err
	}
	if !c.State.Running && condition != "next-exit" && condition != "removed" {
		return c.State.ExitCode, nil
	}
	conn, resp, err := e.ask(ctx, monitor.Request{Op: "wait", ID: c.ID, Condition: condition})
	if err != nil {
		return 0, err
	}
	conn.Close()
	return resp.ExitCode, nil
}

// StopContainer sends the container its stop signal, waits up to timeout
// (nil: its own --stop-timeout, or 10 s), then kills it. Stopping a
// container that is not running does nothing, as in Docker.
func (e *Engine) StopContainer(ctx context.Context, ref string, timeout *int, signal string) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return nil
	}
	if signal == "" {
		signal = c.Config.StopSignal
	}
	sig, err := ParseSignal(signal, unix.SIGTERM)
	if err != nil {
		return err
	}
	t := 10
	if c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	if err := e.markStopped(ctx, c.ID); err != nil {
		return err
	}
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if c.State.Paused {
		rt.Resume(ctx, c.ID)
	}
	if t != 0 {
		if err := rt.Kill(ctx, c.ID, sig, false); err == nil && t > 0 {
			if waitPid(c.State.Pid, time.Duration(t)*time.Second) {
				_, err := e.WaitContainer(ctx, c.ID, "")
				return err
			}
		}
	}
	return e.killAndWait(ctx, c)
}

func (e *Engine) markStopped(ctx context.Context, id string) error {
	_, err := e.containers.UpdateState(ctx, id, func(c *container.Container) error {
		c.Berth.StopRequested = true
		return nil
	})
	return err
}

// killAndWait kills the container's processes and waits until the monitor
// has recorded the exit.
func (e *Engine) killAndWait(ctx context.Context, c *container.Container) error {
	if err := e.markStopped(ctx, c.ID); err != nil {
		return err
	}
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	rt.Kill(ctx, c.ID, unix.SIGKILL, true)
	rt.Kill(ctx, c.ID, unix.SIGKILL, false)
	waitPid(c.State.Pid, -1)
	_, err = e.WaitContainer(ctx, c.ID, "")
	if err != nil {
		return err
	}
	// If no monitor recorded the exit, reconcile does.
	e.Container(ctx, c.ID)
	return nil
}

// waitPid waits for pid to exit, up to d (forever when d < 0), through a
// pidfd: no polling. It reports whether the process is gone.
func waitPid(pid int, d time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	ms := -1
	if d >= 0 {
		ms = int(d / time.Millisecond)
	}
	deadline := time.Now().Add(d)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			if d >= 0 {
				ms = max(0, int(time.Until(deadline)/time.Millisecond))
			}
			continue
		}
		return err == nil && n > 0
	}
}

// KillContainer sends a signal (default SIGKILL) to the container's init.
func (e *Engine) KillContainer(ctx context.Context, ref, signal string) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return errdefs.Conflict("cannot kill container: %s: container %s is not running", c.DisplayName(), c.ID[:12])
	}
	sig, err := ParseSignal(signal, unix.SIGKILL)
	if err != nil {
		return err
	}
	if sig == unix.SIGKILL || sig == unix.SIGTERM || sig == unix.SIGINT {
		e.markStopped(ctx, c.ID)
	}
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if err := rt.Kill(ctx, c.ID, sig, false); err != nil {
		return fmt.Errorf("cannot kill container: %s: %w", c.DisplayName(), err)
	}
	return nil
}

// RestartContainer stops then starts a container.
func (e *Engine) RestartContainer(ctx context.Context, ref string, timeout *int) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	if err := e.StopContainer(ctx, c.ID, timeout, ""); err != nil {
		return err
	}
	_, err = e.StartContainer(ctx, c.ID, nil)
	return err
}

// PauseContainer freezes every process of the container.
func (e *Engine) PauseContainer(ctx context.Context, ref string, pause bool) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return errdefs.Conflict("Container %s is not running", c.ID)
	}
	if pause == c.State.Paused {
		if pause {
			return errdefs.Conflict("Container %s is already paused", c.ID)
		}
		return errdefs.Conflict("Container %s is not paused", c.ID)
	}
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return err
	}
	if pause {
		err = rt.Pause(ctx, c.ID)
	} else {
		err = rt.Resume(ctx, c.ID)
	}
	if err != nil {
		return err
	}
	_, err = e.containers.UpdateState(ctx, c.ID, func(c *container.Container) error {
		if !c.State.Running {
			return nil
		}
		c.State.Paused = pause
		c.State.Status = container.StatusRunning
		if pause {
			c.State.Status = container.StatusPaused
		}
		return nil
	})
	return err
}

// LogsOptions are `logs`' flags.
type LogsOptions struct {
	Follow       bool
	Tail         int // < 0 all
	Since, Until time.Time
}

// Logs calls fn for each selected log entry of the container; following,
// until the container exits or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, opts LogsOptions, fn func(logs.Entry) error) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	ro := logs.ReadOptions{Tail: opts.Tail, Since: opts.Since, Until: opts.Until, Follow: opts.Follow && c.State.Running}
	if ro.Follow {
		done := make(chan struct{})
		ro.Done = done
		go func() {
			e.WaitContainer(ctx, c.ID, "")
			close(done)
		}()
	}
	return logs.Read(ctx, c.LogPath, ro, fn)
}

// ParseSignal reads a signal as a name (KILL, SIGKILL) or a number; empty
// gives def.
func ParseSignal(s string, def unix.Signal) (unix.Signal, error) {
	if s == "" {
		return def, nil
	}
	return signals.Parse(s)
}

// netnsFor returns the network namespace the container joins: "" for a new
// one (none, bridge), "host", or another container's.
func (e *Engine) netnsFor(ctx context.Context, c *container.Container) (string, error) {
	mode := c.HostConfig.NetworkMode
	switch {
	case mode == "host":
		return "host", nil
	case strings.HasPrefix(mode, "container:"):
		other, err := e.Container(ctx, strings.TrimPrefix(mode, "container:"))
		if err != nil {
			return "", err
		}
		if !other.State.Running {
			return "", errdefs.Conflict("cannot join network of a non running container: %s", other.ID)
		}
		return fmt.Sprintf("/proc/%d/ns/net", other.State.Pid), nil
	}
	return "", nil
}
