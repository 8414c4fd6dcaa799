package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/internal/procfs"
	"github.com/berth-dev/berth/logs"
	"github.com/berth-dev/berth/monitor"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/snapshot"
)

// monitorIdle is how long the monitor lingers with nothing to watch;
// monitorQuiet how long after its last request it trims its memory.
const (
	monitorIdle  = 30 * time.Second
	monitorQuiet = 2 * time.Second
)

// ServeMonitor runs the container monitor of this engine's run root (see
// package monitor) until it has been idle for a while. ready, if not nil,
// gets one byte once the monitor accepts connections (or has found
// another monitor serving).
func (e *Engine) ServeMonitor(ctx context.Context, ready *os.File) error {
	signalReady := func() {
		if ready != nil {
			ready.Write([]byte{1})
			ready.Close()
			ready = nil
		}
	}
	defer signalReady()
	// The start lock makes "holds monitor.lock" imply "listens": a monitor
	// takes monitor.lock and starts listening, or closes its listener and
	// gives monitor.lock up, only while holding the start lock. So one
	// that loses the race for monitor.lock, once it holds the start lock
	// itself, knows the winner is listening, and may say it is ready.
	startLock, err := fsutil.LockFile(filepath.Join(e.runRoot, "monitor.start.lock"))
	if err != nil {
		return err
	}
	starting := true
	defer func() {
		if starting {
			startLock.Unlock()
		}
	}()
	lf, err := os.OpenFile(monitor.LockPath(e.runRoot), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	// Deferred after the start lock's release, so it runs first: the
	// monitor lock goes before the start lock does.
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // another monitor serves this run root, and listens
	}
	sock := monitor.SocketPath(e.runRoot)
	os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	// The socket is removed by this monitor only while it is still the one
	// this monitor bound: after a system reset, a new monitor may listen at
	// the same path (in a new run root) before this one exits.
	bound, err := os.Stat(sock)
	if err != nil {
		ln.Close()
		return fmt.Errorf("monitor: %w", err)
	}
	reaper, err := monitor.NewReaper()
	if err != nil {
		return err
	}
	e.sandboxes = network.NewSandboxPool(1, network.SandboxDelay)
	e.endpoints = network.NewEndpointCache()
	e.runtimeCache = runtime.NewCache()
	// Containers' mount namespaces are copied from a template that holds
	// none of the containers' own mounts (see runtime.MountTemplate); none
	// where it cannot be made, and they are copied from the monitor's.
	if t, err := runtime.NewMountTemplate(filepath.Join(e.runRoot, "containers"), e.root, e.runRoot); err == nil {
		e.mountTemplate = t
	} else {
		slog.Debug("no mount namespace template", "err", err)
	}
	m := &monitorServer{e: e, reaper: reaper, sessions: map[string]*session{}, activity: make(chan struct{}, 1), quit: make(chan struct{})}
	defer m.purging.Wait() // the files of containers just removed
	m.startTime, _ = procfs.StartTime(os.Getpid())
	startLock.Unlock()
	starting = false
	signalReady()
	// stopListening closes the listener under the start lock, which the
	// process keeps until it exits (see above). Only the first call acts.
	m.stopListening = sync.OnceFunc(func() {
		if l, err := fsutil.LockFile(filepath.Join(e.runRoot, "monitor.start.lock")); err == nil {
			startLock, starting = l, true
		}
		ln.Close()
		if fi, err := os.Stat(sock); err == nil && os.SameFile(fi, bound) {
			os.Remove(sock)
		}
	})

	stale := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// A monitor whose binary was replaced (berth was upgraded or
			// rebuilt) hands over to a new one as soon as it watches
			// nothing: it stops listening, then refuses the connection,
			// whose client retries and (finding no listener, rather than
			// this one's backlog) starts the new binary.
			if exeReplaced() && m.idle() {
				m.mu.Lock()
				m.stopListening()
				m.mu.Unlock()
				c.Close()
				close(stale)
				return
			}
			m.track(+1)
			go func() {
				defer m.track(-1)
				m.handle(ctx, monitor.NewConn(c))
			}()
		}
	}()
	// Exit once idle: no session and no client for monitorIdle. Once
	// quiet for a moment, give memory back (see monitor.Trim).
	idle := time.NewTimer(monitorIdle)
	quiet := time.NewTimer(monitorQuiet)
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.stopListening()
			m.mu.Unlock()
			return nil
		case <-stale:
			return nil // no longer listening (see above)
		case <-m.quit:
			return nil // no longer listening (see exit)
		case <-m.activity:
			idle.Reset(monitorIdle)
			quiet.Reset(monitorQuiet)
		case <-quiet.C:
			monitor.Trim()
		case <-idle.C:
			m.mu.Lock()
			busy := len(m.sessions) > 0 || m.conns > 0
			if !busy {
				// Stop accepting while holding mu: a client that connects
				// now gets a refusal and starts a new monitor, which waits
				// for our locks.
				m.stopListening()
				m.mu.Unlock()
				return nil
			}
			m.mu.Unlock()
			idle.Reset(monitorIdle)
		}
	}
}

type monitorServer struct {
	e         *Engine
	reaper    *monitor.Reaper
	activity  chan struct{}
	quit      chan struct{} // closed when an exit request is granted
	startTime string        // of this process, recorded with each container it starts

	mu      sync.Mutex
	exiting bool // see exit
	// stopListening closes the listener and removes the socket (once);
	// it is called with mu held.
	stopListening func()
	sessions      map[string]*session
	conns         int
	// purging counts the removed containers whose files are being deleted
	// and the spare writable layers being made.
	purging sync.WaitGroup
	// makingSpares is set while spare writable layers are made.
	makingSpares atomic.Bool
}

// makeSpares makes, in the background, the empty writable layers that the
// next containers' creations take instead of making their own (see
// snapshot.Snapshotter.MakeSpares): directories made here, between starts,
// are not made while a client waits.
func (m *monitorServer) makeSpares(ctx context.Context) {
	if !m.makingSpares.CompareAndSwap(false, true) {
		return
	}
	m.purging.Add(1)
	go func() {
		defer m.purging.Done()
		defer m.makingSpares.Store(false)
		if err := m.e.snaps.MakeSpares(ctx); err != nil {
			slog.Debug("make spare writable layers", "err", err)
		}
	}()
}

// idle reports whether the monitor watches no container and serves no client.
func (m *monitorServer) idle() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions) == 0 && m.conns == 0
}

// exeReplaced reports whether the running binary was deleted or replaced.
func exeReplaced() bool {
	p, err := os.Readlink("/proc/self/exe")
	return err == nil && strings.HasSuffix(p, " (deleted)")
}

func (m *monitorServer) track(delta int) {
	m.mu.Lock()
	m.conns += delta
	m.mu.Unlock()
	m.poke()
}

// poke tells the main loop something happened.
func (m *monitorServer) poke() {
	select {
	case m.activity <- struct{}{}:
	default:
	}
}

// session is one running container as the monitor holds it.
type session struct {
	id    string
	stdin *os.File // the write end of the container's stdin, if open
	// gate holds the container's output back from attached clients until
	// the start response is on the wire before it; open opens it.
	gate chan struct{}
	open func()
	tty  *os.File // the pty master, for a container with a terminal
	// autoRemove is the container's --rm, read when it starts.
	autoRemove bool

	mu      sync.Mutex
	subs    map[*monitor.Conn]bool
	waiters []chan int // told the exit code once recorded
	removed []chan int // told once an --rm container is gone
	exited  bool
	code    int
}

func newSession(id string) *session {
	s := &session{id: id, subs: map[*monitor.Conn]bool{}, gate: make(chan struct{})}
	s.open = sync.OnceFunc(func() { close(s.gate) })
	return s
}

func (s *session) broadcast(typ byte, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.subs {
		if c.WriteFrame(typ, p) != nil {
			delete(s.subs, c)
		}
	}
}

func (m *monitorServer) handle(ctx context.Context, c *monitor.Conn) {
	defer c.Close()
	var req monitor.Request
	if err := c.ReadJSON(&req); err != nil {
		return
	}
	switch req.Op {
	case "ping":
		c.WriteJSON(monitor.Response{})
	case "start", "prepare":
		m.start(ctx, c, req)
	case "attach":
		m.attach(ctx, c, req)
	case "wait":
		m.wait(ctx, c, req)
	case "exec":
		m.exec(ctx, c, req)
	case "exit":
		m.exit(c)
	default:
		c.WriteJSON(monitor.Response{Error: fmt.Sprintf("unknown monitor request %q", req.Op)})
	}
}

// exit grants a request to exit now, rather than once idle for a while, to
// a monitor that watches no container (system reset asks it): it answers,
// then stops listening and exits. A start that comes in between is closed
// unanswered, as during a handover, and its client starts a new monitor.
func (m *monitorServer) exit(c *monitor.Conn) {
	m.mu.Lock()
	n := len(m.sessions)
	if n == 0 && !m.exiting {
		m.stopListening()
		m.exiting = true
		close(m.quit)
	}
	m.mu.Unlock()
	if n > 0 {
		c.WriteJSON(monitor.Response{Error: fmt.Sprintf("the monitor watches %d container(s)", n), Class: errdefs.ErrConflict.Error(), ExitCode: 125})
		return
	}
	c.WriteJSON(monitor.Response{})
}

func errResponse(err error) monitor.Response {
	r := monitor.Response{Error: err.Error(), ExitCode: 125}
	for _, cl := range []error{errdefs.ErrNotFound, errdefs.ErrConflict, errdefs.ErrInvalidArgument, errdefs.ErrAlreadyExists} {
		if errors.Is(err, cl) {
			r.Class = cl.Error()
		}
	}
	var pe interface{ ExitCode() int }
	if errors.As(err, &pe) {
		r.ExitCode = pe.ExitCode()
	}
	return r
}

// start starts a container and, if asked, streams its stdio over c until
// it exits.
func (m *monitorServer) start(ctx context.Context, c *monitor.Conn, req monitor.Request) {
	m.mu.Lock()
	if m.exiting {
		m.mu.Unlock()
		return // unanswered: the client starts a new monitor (see exit)
	}
	if _, ok := m.sessions[req.ID]; ok {
		m.mu.Unlock()
		c.WriteJSON(monitor.Response{Error: "container " + req.ID[:12] + " is already running", Class: errdefs.ErrConflict.Error(), ExitCode: 125})
		return
	}
	s := newSession(req.ID)
	if req.Attach {
		s.subs[c] = true
	}
	m.sessions[req.ID] = s
	m.mu.Unlock()

	// A start goes ahead at once; a prepared start (see prepareStart) once
	// its client says the container was created, and how to start it.
	var given *container.Container
	begin := func() (monitor.Go, error) {
		return monitor.Go{RootMounted: req.RootMounted, Attach: req.Attach, Stdin: req.Stdin}, nil
	}
	if req.Op == "prepare" {
		given = new(container.Container)
		if err := json.Unmarshal(req.Container, given); err != nil || given.ID != req.ID {
			m.mu.Lock()
			delete(m.sessions, req.ID)
			m.mu.Unlock()
			c.WriteJSON(errResponse(fmt.Errorf("prepare container %.12s: bad record", req.ID)))
			return
		}
		begin = func() (monitor.Go, error) {
			var g monitor.Go
			if err := c.ReadJSON(&g); err != nil {
				return g, fmt.Errorf("prepared start of %.12s: client gone: %w", req.ID, err)
			}
			if g.Abort {
				return g, fmt.Errorf("prepared start of %.12s: dropped", req.ID)
			}
			req.Attach, req.Stdin = g.Attach, g.Stdin
			if g.Attach {
				s.mu.Lock()
				s.subs[c] = true
				s.mu.Unlock()
			}
			return g, nil
		}
	}
	pid, err := m.run(ctx, s, given, begin)
	if err != nil {
		m.mu.Lock()
		delete(m.sessions, req.ID)
		m.mu.Unlock()
		c.WriteJSON(errResponse(err))
		return
	}
	err = c.WriteJSON(monitor.Response{Pid: pid})
	s.open()
	// The start is over for its client: the sandbox the next start will
	// want is made now (after a moment, while the client exits and the
	// next one starts up), not after the pool's delay.
	if m.e.sandboxes != nil {
		m.e.sandboxes.Refill(network.RefillDelay)
	}
	m.makeSpares(context.WithoutCancel(ctx))
	if err != nil || !req.Attach {
		return
	}
	m.stream(c, s, req.Stdin)
}

// stream forwards the client's frames (input, signals) to the container
// until it exits, then sends the exit frame.
func (m *monitorServer) stream(c *monitor.Conn, s *session, stdin bool) {
	done := make(chan int, 1)
	s.mu.Lock()
	if s.exited {
		s.mu.Unlock()
		done <- s.code
	} else {
		if s.subs[c] {
			s.waiters = append(s.waiters, done)
		}
		s.mu.Unlock()
	}
	go func() {
		for {
			typ, p, err := c.ReadFrame()
			if err != nil {
				return
			}
			switch typ {
			case monitor.FrameStdin:
				if !stdin || s.stdin == nil {
					continue
				}
				if len(p) == 0 {
					if s.tty == nil {
						s.stdin.Close()
					}
					continue
				}
				s.stdin.Write(p)
			case monitor.FrameResize:
				if s.tty != nil && len(p) == 4 {
					monitor.Resize(s.tty, binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]))
				}
			case monitor.FrameSignal:
				if len(p) == 1 {
					m.signal(s.id, unix.Signal(p[0]))
				}
			}
		}
	}()
	code := <-done
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	s.mu.Lock()
	delete(s.subs, c)
	s.mu.Unlock()
	c.WriteFrame(monitor.FrameExit, b[:])
}

func (m *monitorServer) signal(id string, sig unix.Signal) {
	c, err := m.e.containers.Get(context.Background(), id)
	if err != nil {
		return
	}
	if rt, err := m.e.ociRuntimeFor(c.HostConfig.Runtime); err == nil {
		rt.Kill(context.Background(), id, sig, false)
	}
}

// run prepares and starts the container's process and the goroutines that
// watch it. It returns the init's pid. given is the container's record as a
// prepared start sent it (nil: read it from the store); begin is called once
// the network is under way and says how to go on (see prepareBundle).
func (m *monitorServer) run(ctx context.Context, s *session, given *container.Container, begin func() (monitor.Go, error)) (pid int, err error) {
	e := m.e
	c := given
	if c == nil {
		if c, err = e.containers.Get(ctx, s.id); err != nil {
			return 0, err
		}
	}
	if c.State.Running {
		return 0, errdefs.Conflict("container %s is already running", c.ID[:12])
	}
	s.autoRemove = c.HostConfig.AutoRemove
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return 0, err
	}
	tr := newRunTrace(c.ID)
	// The log file (on the data root's disk) is opened while the bundle is
	// made: neither waits for the other.
	type opened struct {
		w   *logs.Writer
		err error
	}
	logc := make(chan opened, 1)
	var params monitor.Go
	begun := false
	bundle, waitNet, err := e.prepareBundle(ctx, c, tr, func() (bool, error) {
		var err error
		if params, err = begin(); err != nil {
			return false, err
		}
		begun = true
		go func() {
			w, err := logs.Create(c.LogPath)
			logc <- opened{w, err}
		}()
		return params.RootMounted, nil
	})
	openStdin := params.Stdin
	var lo opened
	if begun {
		lo = <-logc
	}
	if err != nil {
		if begun && lo.err == nil {
			lo.w.Close()
		}
		return 0, err
	}
	defer func() {
		if err != nil {
			rt.Delete(context.WithoutCancel(ctx), c.ID, true)
			waitNet() // nothing is torn down while it is being set up
			e.unprepare(c.ID)
		}
	}()
	lw, err := lo.w, lo.err
	if err != nil {
		return 0, err
	}
	// The container's stdio: pipes whose far ends the monitor keeps, or a
	// terminal whose master the runtime sends over a console socket.
	var outR, errR *os.File
	var stdio [3]*os.File
	var console *monitor.ConsoleSocket
	if c.Config.Tty {
		if console, err = monitor.ListenConsole(filepath.Join(e.runDir(c.ID), "console.sock")); err != nil {
			lw.Close()
			return 0, err
		}
		defer console.Close()
	} else {
		var outW, errW, inR *os.File
		if outR, outW, err = os.Pipe(); err != nil {
			return 0, err
		}
		if errR, errW, err = os.Pipe(); err != nil {
			return 0, err
		}
		if c.Config.OpenStdin && openStdin {
			if inR, s.stdin, err = os.Pipe(); err != nil {
				return 0, err
			}
		}
		stdio = [3]*os.File{inR, outW, errW}
	}
	consolePath := ""
	if console != nil {
		consolePath = console.Path
	}
	pid, err = rt.Create(ctx, c.ID, bundle, stdio, consolePath)
	tr.mark("runtime create")
	// The network was finished while the runtime created the container;
	// its process starts only once it is. A network that failed (an
	// address in use, say) explains a failed create too: it took the
	// namespace away.
	if settings, nerr := waitNet(); nerr != nil {
		err = nerr
	} else {
		c.NetworkSettings = settings // recorded with the running state
	}
	for _, f := range stdio {
		if f != nil {
			f.Close()
		}
	}
	if err == nil && console != nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s.tty, err = console.Receive(rctx)
		cancel()
		if err == nil {
			outR = s.tty
			if openStdin {
				s.stdin = s.tty
			}
		}
	}
	if err != nil {
		for _, f := range []*os.File{outR, errR, s.stdin} {
			if f != nil {
				f.Close()
			}
		}
		lw.Close()
		return 0, err
	}
	exited := m.reaper.Watch(pid)
	start, _ := procfs.StartTime(pid)
	settings := c.NetworkSettings
	// The record says running while the runtime starts the process: the
	// two wait on different things (the disk, the init), and neither needs
	// the other done. What fails stops both below.
	recorded := make(chan error, 1)
	go func() {
		_, err := e.containers.UpdateState(ctx, c.ID, func(c *container.Container) error {
			c.State.SetRunning(pid, time.Now().UTC())
			c.NetworkSettings = settings
			c.Berth.PidStart = start
			c.Berth.MonitorPid, c.Berth.MonitorStart = os.Getpid(), m.startTime
			c.Berth.StopRequested = false
			return nil
		})
		recorded <- err
	}()
	var copiers sync.WaitGroup
	for _, p := range []struct {
		r      *os.File
		stream string
		typ    byte
	}{{outR, "stdout", monitor.FrameStdout}, {errR, "stderr", monitor.FrameStderr}} {
		if p.r == nil {
			continue
		}
		copiers.Add(1)
		go func() {
			defer copiers.Done()
			defer p.r.Close()
			lw.Copy(p.stream, io.TeeReader(p.r, frameSink{s, p.typ}))
		}()
	}
	err = rt.Start(ctx, c.ID)
	if rerr := <-recorded; err == nil {
		err = rerr
	}
	tr.mark("started, recorded running")
	if err != nil {
		rt.Kill(ctx, c.ID, unix.SIGKILL, false)
		// The client gets the error, not what the dying process wrote.
		s.mu.Lock()
		clear(s.subs)
		s.mu.Unlock()
		s.open()
		<-exited
		copiers.Wait()
		lw.Close()
		m.recordExit(ctx, c.ID, 127, false, false)
		return 0, err
	}
	go func() {
		ws := <-exited
		tr.mark("process exited")
		copiers.Wait()
		lw.Close()
		m.exited(context.WithoutCancel(ctx), s, rt, monitor.ExitCode(ws), tr)
	}()
	return pid, nil
}

// frameSink copies what the log copier reads to the attached clients.
type frameSink struct {
	s   *session
	typ byte
}

func (f frameSink) Write(p []byte) (int, error) {
	<-f.s.gate
	f.s.broadcast(f.typ, p)
	return len(p), nil
}

// exited records a container's exit and carries out its policy: restart,
// remove (--rm), or stay exited.
func (m *monitorServer) exited(ctx context.Context, s *session, rt ociRuntime, code int, tr *runTrace) {
	e := m.e
	oom := rt.OOMKilled(ctx, s.id)
	// An --rm container (which never restarts) is claimed for removal in
	// the same write that records its exit. Claimed, no other command
	// touches it: the write goes while its runtime state, network and root
	// are released. Any other container is released first, so that one
	// seen exited holds nothing any more.
	var c *container.Container
	var claimed bool
	if s.autoRemove {
		var wg sync.WaitGroup
		wg.Go(func() { c, claimed = m.recordExit(ctx, s.id, code, oom, true) })
		e.release(ctx, s.id, rt)
		wg.Wait()
	} else {
		e.release(ctx, s.id, rt)
		c, claimed = m.recordExit(ctx, s.id, code, oom, true)
	}
	tr.mark("released, recorded exit")
	if s.stdin != nil && s.stdin != s.tty {
		s.stdin.Close()
	}

	restart := false
	if c != nil {
		p := c.HostConfig.RestartPolicy
		switch p.Name {
		case "always":
			restart = !c.Berth.StopRequested
		case "unless-stopped":
			restart = !c.Berth.StopRequested
		case "on-failure":
			restart = code != 0 && !c.Berth.StopRequested && (p.MaximumRetryCount == 0 || c.RestartCount < p.MaximumRetryCount)
		}
	}
	s.mu.Lock()
	s.exited, s.code = true, code
	waiters := s.waiters
	s.waiters = nil
	s.mu.Unlock()

	purge := func() error { return nil }
	if claimed {
		var err error
		if purge, err = e.removeReleased(ctx, c, true); err != nil && !errdefs.IsNotFound(err) {
			slog.Warn("remove container", "container", s.id, "err", err)
		}
	}
	tr.mark("exit handled")
	m.mu.Lock()
	delete(m.sessions, s.id)
	m.purging.Add(1) // before the session goes: the monitor waits for it
	m.mu.Unlock()
	m.poke()
	for _, w := range waiters {
		w <- code
	}
	s.mu.Lock()
	for _, w := range s.removed {
		w <- code
	}
	s.mu.Unlock()
	// The container is gone for everyone now; its files go after the
	// client that waited for the removal has its answer.
	if err := purge(); err != nil {
		slog.Warn("remove container", "container", s.id, "err", err)
	}
	m.purging.Done()

	if restart {
		delay := 100 * time.Millisecond << min(c.RestartCount, 8)
		e.containers.UpdateState(ctx, s.id, func(c *container.Container) error {
			c.RestartCount++
			c.State.Restarting = true
			c.State.Status = container.StatusRestarting
			return nil
		})
		time.AfterFunc(delay, func() {
			ns := newSession(s.id)
			ns.open() // no client waits for a start response
			m.mu.Lock()
			if _, busy := m.sessions[s.id]; busy {
				m.mu.Unlock()
				return
			}
			m.sessions[s.id] = ns
			m.mu.Unlock()
			if _, err := m.run(ctx, ns, nil, func() (monitor.Go, error) { return monitor.Go{}, nil }); err != nil {
				m.mu.Lock()
				delete(m.sessions, s.id)
				m.mu.Unlock()
				slog.Warn("restart container", "container", s.id, "err", err)
			}
		})
	}
}

// recordExit records a container's exit. With claim, an --rm container is
// also marked as being removed (see removeStopped), which the caller then
// carries out: claimed says so.
func (m *monitorServer) recordExit(ctx context.Context, id string, code int, oom, claim bool) (c *container.Container, claimed bool) {
	c, err := m.e.containers.UpdateState(ctx, id, func(c *container.Container) error {
		removing := c.State.Status == container.StatusRemoving
		c.State.SetExited(code, oom, time.Now().UTC())
		claimed = claim && c.HostConfig.AutoRemove && !removing
		if claimed || removing {
			c.State.Status = container.StatusRemoving
		}
		return nil
	})
	if err != nil {
		return nil, false
	}
	return c, claimed
}

// attach streams a running container's output to c (and c's input to it).
func (m *monitorServer) attach(ctx context.Context, c *monitor.Conn, req monitor.Request) {
	m.mu.Lock()
	s := m.sessions[req.ID]
	m.mu.Unlock()
	if s == nil {
		c.WriteJSON(monitor.Response{Error: "You cannot attach to a stopped container, start it first", Class: errdefs.ErrConflict.Error(), ExitCode: 125})
		return
	}
	// The response goes first: output frames must not precede it.
	if c.WriteJSON(monitor.Response{}) != nil {
		return
	}
	s.mu.Lock()
	s.subs[c] = true
	s.mu.Unlock()
	m.stream(c, s, req.Stdin)
}

// wait answers once the container is not running (or, for "removed", gone).
func (m *monitorServer) wait(ctx context.Context, c *monitor.Conn, req monitor.Request) {
	m.mu.Lock()
	s := m.sessions[req.ID]
	m.mu.Unlock()
	if s != nil {
		ch := make(chan int, 1)
		s.mu.Lock()
		if s.exited && req.Condition != "removed" {
			ch <- s.code
		} else if req.Condition == "removed" {
			s.removed = append(s.removed, ch)
		} else {
			s.waiters = append(s.waiters, ch)
		}
		s.mu.Unlock()
		// Answer early if the client goes away.
		gone := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(gone) }()
		select {
		case code := <-ch:
			c.WriteJSON(monitor.Response{ExitCode: code})
		case <-gone:
		}
		return
	}
	rec, err := m.e.containers.Get(ctx, req.ID)
	if err != nil {
		if req.Condition == "removed" && errdefs.IsNotFound(err) {
			c.WriteJSON(monitor.Response{})
			return
		}
		c.WriteJSON(errResponse(err))
		return
	}
	c.WriteJSON(monitor.Response{ExitCode: rec.State.ExitCode})
}

// prepareBundle mounts the container's root file system and writes the OCI
// bundle for it under the run directory.
//
// The network is set up while the root is mounted and the mounts
// resolved (the two share nothing but the run directory), and it is
// finished while the runtime creates the container: the bundle needs only
// its namespace and the /etc files to exist. waitNet, which the caller
// must call before the container's process starts (and on every path
// once prepareBundle succeeded), waits for the rest and returns the
// container's NetworkSettings.
//
// begin is called once the network is under way, before anything needs the
// container's record on disk or its root: it says whether the root is
// mounted already (see monitor.Request.RootMounted), or fails the start.
func (e *Engine) prepareBundle(ctx context.Context, c *container.Container, tr *runTrace, begin func() (rootMounted bool, err error)) (bundle string, waitNet func() (container.NetworkSettings, error), err error) {
	dir := e.runDir(c.ID)
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return "", nil, err
	}
	type netResult struct {
		ns       string
		settings container.NetworkSettings
		err      error
	}
	netc := make(chan netResult, 1)
	earlyc := make(chan netResult, 1)
	go func() {
		var r netResult
		r.ns, r.settings, r.err = e.setupNetwork(ctx, c, dir, func(ns string, err error) {
			earlyc <- netResult{ns: ns, err: err}
		})
		netc <- r
	}()
	var net *netResult
	wait := func() (container.NetworkSettings, error) {
		if net == nil {
			r := <-netc
			net = &r
			tr.mark("network (waited for)")
		}
		return net.settings, net.err
	}
	ok := false
	defer func() {
		if !ok {
			if _, err := wait(); err == nil {
				e.teardownNetwork(context.WithoutCancel(ctx), c.ID)
			}
		}
	}()
	rootMounted, err := begin()
	if err != nil {
		return "", nil, err
	}
	tr.mark("begun")
	// A root that run mounted for this start (see CreateOptions.MountRoot)
	// is used as it is; anything else there is a stale mount from a crash.
	if !rootMounted || !isMountedRoot(rootfs) {
		snapshot.Unmount(rootfs)
		if err := e.mountRoot(ctx, c.Berth.RootfsKey, c.HostConfig.AutoRemove, rootfs); err != nil {
			return "", nil, err
		}
	}
	defer func() {
		if !ok {
			snapshot.Unmount(rootfs)
		}
	}()
	user, err := resolveUser(rootfs, c.Config.User)
	if err != nil {
		return "", nil, err
	}
	if wd := c.Config.WorkingDir; wd != "" && wd != "/" {
		if err := mkdirInRoot(rootfs, wd, user.uid, user.gid); err != nil {
			return "", nil, err
		}
	}
	ms, err := e.mountSpecs(ctx, c, rootfs)
	if err != nil {
		return "", nil, err
	}
	tr.mark("root and mounts")
	early := <-earlyc
	tr.mark("netns (waited for)")
	if early.err != nil {
		return "", nil, early.err
	}
	netns := early.ns
	var etc []specs.Mount
	for _, f := range []string{"hostname", "hosts", "resolv.conf"} {
		opts := []string{"rbind", "rprivate"}
		if c.HostConfig.ReadonlyRootfs {
			opts = append(opts, "ro")
		}
		etc = append(etc, specs.Mount{Destination: "/etc/" + f, Type: "bind", Source: filepath.Join(dir, f), Options: opts})
	}
	ms = append(etc, ms...)
	env := c.Config.Env
	if c.Config.Tty && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+user.home)
	}
	if !hasEnv(env, "HOSTNAME") {
		env = append(env, "HOSTNAME="+c.Config.Hostname)
	}
	cc := *c
	cc.Config.Env = env
	if c.HostConfig.Init != nil && *c.HostConfig.Init {
		// --init: tini as PID 1, reaping zombies and forwarding signals, as
		// Docker's docker-init (which is tini) does.
		const tini = "/usr/bin/tini-static"
		if _, err := os.Stat(tini); err != nil {
			return "", nil, errdefs.InvalidArgument("--init needs %s on the host (apt-get install tini)", tini)
		}
		ms = append(ms, specs.Mount{Destination: "/sbin/docker-init", Type: "bind", Source: tini, Options: []string{"rbind", "ro"}})
		cc.Path, cc.Args = "/sbin/docker-init", append([]string{"--", c.Path}, c.Args...)
	}
	spec, err := buildSpec(specInput{c: &cc, rootfs: rootfs, user: user, mounts: ms, netns: netns})
	if err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", nil, err
	}
	bundle = filepath.Join(dir, "bundle")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return "", nil, err
	}
	ok = true
	tr.mark("bundle written")
	return bundle, wait, nil
}

// mountRoot mounts the root file system of the writable snapshot key at
// rootfs: for an --rm container (autoRemove), volatile where the kernel
// knows the option.
func (e *Engine) mountRoot(ctx context.Context, key string, autoRemove bool, rootfs string) error {
	mounts, err := e.snaps.Mounts(ctx, key)
	if err != nil {
		return fmt.Errorf("container root: %w", err)
	}
	return mountRootWith(mounts, autoRemove, rootfs)
}

// mountRootWith mounts a container's root, given its snapshot's mounts.
func mountRootWith(mounts []snapshot.Mount, autoRemove bool, rootfs string) error {
	err := errors.ErrUnsupported
	if autoRemove {
		if vm, ok := volatileRoot(mounts); ok {
			err = snapshot.MountAll(vm, rootfs)
		}
	}
	if err != nil {
		err = snapshot.MountAll(mounts, rootfs) // also where volatile is unknown (before Linux 5.10)
	}
	if err != nil {
		return fmt.Errorf("mount container root: %w", err)
	}
	return nil
}

// isMountedRoot reports whether a file system is mounted on dir (the
// overlay, or the native driver's bind mount from the data root): the
// run directory it is in is on the run root's tmpfs.
func isMountedRoot(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// volatileRoot returns an --rm container's overlay root mount with the
// "volatile" option: its upper directory goes with the container, so the
// kernel need not sync the upper file system when the overlay is
// unmounted. Overlayfs refuses an upper mounted volatile again until its
// work/incompat/volatile is removed (it may have missed a crash): the root
// is mounted afresh on each start, so that goes first.
func volatileRoot(mounts []snapshot.Mount) ([]snapshot.Mount, bool) {
	if len(mounts) != 1 || mounts[0].Type != "overlay" {
		return nil, false
	}
	m := mounts[0]
	for _, o := range m.Options {
		if work, ok := strings.CutPrefix(o, "workdir="); ok {
			os.Remove(filepath.Join(work, "work", "incompat", "volatile"))
		}
	}
	m.Options = append(slices.Clone(m.Options), "volatile")
	return []snapshot.Mount{m}, true
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if len(kv) > len(k) && kv[:len(k)+1] == k+"=" {
			return true
		}
	}
	return false
}

// unprepare undoes prepareBundle: the container's network and its root
// mount, torn down side by side (they share nothing).
func (e *Engine) unprepare(id string) {
	e.release(context.Background(), id, nil)
}

// release undoes what a container's start made on the host: its runtime
// state and cgroups (if rt is not nil), its network and its root mount.
// The three share nothing and each waits on the kernel, so they run at
// once.
func (e *Engine) release(ctx context.Context, id string, rt ociRuntime) {
	var wg sync.WaitGroup
	if rt != nil {
		wg.Go(func() {
			if err := rt.Delete(ctx, id, true); err != nil {
				slog.Warn("delete runtime state", "container", id, "err", err)
			}
		})
	}
	wg.Go(func() { e.teardownNetwork(context.WithoutCancel(ctx), id) })
	snapshot.Unmount(filepath.Join(e.runDir(id), "rootfs"))
	wg.Wait()
}

// releaseRuntime cleans what a stopped container may still hold in the
// runtime and on the host (after a crash of its monitor): its runtime
// state and cgroup, its root mount.
func (e *Engine) releaseRuntime(ctx context.Context, c *container.Container) {
	rt, _ := e.ociRuntimeFor(c.HostConfig.Runtime)
	e.release(ctx, c.ID, rt)
}

// monitorCmd is how a client starts the monitor.
func (e *Engine) monitorCmd() *exec.Cmd {
	cmd := exec.Command(e.exe, "--root", e.root, "--runroot", e.runRoot, "--storage-driver", e.snaps.Driver(), "_monitor")
	if f, err := os.OpenFile(filepath.Join(e.runRoot, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	return cmd
}

// dialMonitor connects to the monitor, starting it if needed.
func (e *Engine) dialMonitor(ctx context.Context) (*monitor.Conn, error) {
	return monitor.Dial(ctx, e.runRoot, e.monitorCmd)
}

// ask sends one request and reads the response. A monitor that closes
// the connection unanswered is handing over to a newer binary: ask again.
// (Closed with the request unread, the connection is reset rather than
// ended; closed before the request is written, the write breaks the
// pipe.)
func (e *Engine) ask(ctx context.Context, req monitor.Request) (*monitor.Conn, monitor.Response, error) {
	c, resp, err := e.ask1(ctx, req)
	if errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) {
		return e.ask1(ctx, req)
	}
	return c, resp, err
}

func (e *Engine) ask1(ctx context.Context, req monitor.Request) (*monitor.Conn, monitor.Response, error) {
	c, err := e.dialMonitor(ctx)
	if err != nil {
		return nil, monitor.Response{}, err
	}
	if err := c.WriteJSON(req); err != nil {
		c.Close()
		return nil, monitor.Response{}, fmt.Errorf("monitor: %w", err)
	}
	var resp monitor.Response
	if err := c.ReadJSON(&resp); err != nil {
		c.Close()
		return nil, resp, fmt.Errorf("monitor: %w", err)
	}
	return c, resp, responseErr(resp)
}

// responseErr maps a monitor's error back to its class.
func responseErr(r monitor.Response) error {
	if r.Error == "" {
		return nil
	}
	var err error
	switch r.Class {
	case errdefs.ErrNotFound.Error():
		err = errdefs.NotFound("%s", r.Error)
	case errdefs.ErrConflict.Error():
		err = errdefs.Conflict("%s", r.Error)
	case errdefs.ErrInvalidArgument.Error():
		err = errdefs.InvalidArgument("%s", r.Error)
	default:
		err = errors.New(r.Error)
	}
	if r.ExitCode != 125 && r.ExitCode != 0 {
		return &ExitError{Code: r.ExitCode, Err: err}
	}
	return err
}

// ExitError is a failure that maps to a particular exit status (126 cannot
// execute, 127 not found).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }
func (e *ExitError) ExitCode() int { return e.Code }
