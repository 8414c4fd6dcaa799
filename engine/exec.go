package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/monitor"
	"github.com/berth-dev/berth/runtime"
)

// ExecOptions are `exec`'s flags.
type ExecOptions struct {
	// Cmd is the command and its arguments.
	Cmd []string
	// Env are KEY=VALUE pairs set over the container's environment.
	Env []string
	// User overrides the container's user (name or uid[:group or gid]).
	User string
	// WorkingDir overrides the container's working directory.
	WorkingDir string
	// Privileged gives the process every capability.
	Privileged bool
	// Tty gives the process a terminal.
	Tty bool
	// Detach starts the process and returns at once.
	Detach bool
}

// execIO is the stdio of an exec'd process: files, or a console socket
// that receives the master of the terminal the runtime makes.
type execIO struct {
	stdio         [3]*os.File
	consoleSocket string
	detach        bool
	// subreaper says the caller is a child subreaper (the monitor), to
	// which a detached process an external runtime leaves comes, to be
	// waited for.
	subreaper bool
}

// execProcess is a process an OCI runtime started with Exec.
type execProcess interface {
	// Wait waits for the process and returns its exit status.
	Wait() (int, error)
	// Signal sends the process a signal.
	Signal(sig unix.Signal) error
}

// ExecContainer runs a new process in a running container: in its
// namespaces and cgroup, with its environment, working directory, user,
// capabilities and seccomp filter unless opts override them. It returns
// the process's exit status; 126 (cannot execute) and 127 (not found)
// come as an *ExitError worded as Docker words them. With opts.Detach it
// returns once the process runs.
//
// A detached process (without a terminal) is started by the container's
// monitor, which is its parent and reaps it.
func (e *Engine) ExecContainer(ctx context.Context, ref string, opts ExecOptions, streams *Streams) (int, error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return 0, err
	}
	if !c.State.Running {
		return 0, errdefs.Conflict("container %s is not running", c.ID)
	}
	if c.State.Paused {
		return 0, errdefs.Conflict("Container %s is paused, unpause the container before exec", c.ID)
	}
	if len(opts.Cmd) == 0 {
		return 0, errdefs.InvalidArgument("no command specified")
	}
	if opts.WorkingDir != "" && !path.IsAbs(opts.WorkingDir) {
		return 0, errdefs.InvalidArgument("the working directory '%s' is invalid, it needs to be an absolute path", opts.WorkingDir)
	}
	proc, err := e.execProcessSpec(c, opts)
	if err != nil {
		return 0, err
	}
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return 0, err
	}
	if streams == nil {
		streams = &Streams{}
	}
	if opts.Tty {
		return e.execTerminal(ctx, c.ID, c.State.Pid, rt, proc, opts.Detach, streams)
	}
	if opts.Detach {
		// The monitor starts it, so that it is the process's parent and
		// reaps it when it exits, as it does the container's init.
		conn, _, err := e.ask(ctx, monitor.Request{Op: "exec", ID: c.ID, Process: proc})
		if err != nil {
			return 0, err
		}
		conn.Close()
		return 0, nil
	}
	pio, err := newPipeIO(streams, opts.Detach)
	if err != nil {
		return 0, err
	}
	defer pio.close()
	p, err := rt.Exec(ctx, c.ID, proc, execIO{stdio: pio.files, detach: opts.Detach})
	pio.started()
	if err != nil {
		return 0, execError(err)
	}
	stop := forwardSignals(p, streams.Signals)
	code, err := p.Wait()
	stop()
	pio.wait()
	return code, err
}

// execError words a failure to start the process as Docker does, keeping
// its exit status.
func execError(err error) error {
	var pe *runtime.ProcessError
	if errors.As(err, &pe) {
		return &ExitError{Code: pe.Code, Err: fmt.Errorf("OCI runtime exec failed: exec failed: unable to start container process: %s: unknown", pe.Msg)}
	}
	return fmt.Errorf("OCI runtime exec failed: %w", err)
}

// execProcessSpec makes the process to run from the one the container
// runs (its bundle's config.json), with opts applied.
func (e *Engine) execProcessSpec(c *container.Container, opts ExecOptions) (*specs.Process, error) {
	id := c.ID
	b, err := os.ReadFile(filepath.Join(e.runDir(id), "bundle", "config.json"))
	if err != nil {
		return nil, fmt.Errorf("exec: container spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("exec: container spec: %w", err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("exec: container spec has no process")
	}
	p := *spec.Process
	p.Args = opts.Cmd
	p.Terminal = opts.Tty
	p.ConsoleSize = nil
	p.Env = mergeEnv(p.Env, opts.Env)
	if opts.Tty && !hasEnv(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if opts.WorkingDir != "" {
		p.Cwd = opts.WorkingDir
	}
	if opts.User != "" {
		u, err := resolveUser(filepath.Join(e.runDir(id), "rootfs"), opts.User)
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: u.uid, GID: u.gid, AdditionalGids: u.groups}
		// HOME follows the user, unless the container or exec set it.
		if !hasEnv(c.Config.Env, "HOME") && !hasEnv(opts.Env, "HOME") {
			p.Env = mergeEnv(p.Env, []string{"HOME=" + u.home})
		}
	}
	if opts.Privileged {
		caps := availableCaps()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	}
	return &p, nil
}

// pipeIO turns a client's streams into the files a runtime hands to a
// process: the client's own files where they are files, pipes copied to
// and from them otherwise.
type pipeIO struct {
	files  [3]*os.File
	ours   []*os.File // ends to close once the process has them
	mine   []*os.File // our ends of the pipes
	copies sync.WaitGroup
}

func newPipeIO(s *Streams, detach bool) (*pipeIO, error) {
	p := &pipeIO{}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	p.ours = append(p.ours, null)
	for i := range p.files {
		p.files[i] = null
	}
	if detach {
		return p, nil
	}
	if s.Stdin != nil {
		if f, ok := s.Stdin.(*os.File); ok {
			p.files[0] = f
		} else {
			r, w, err := os.Pipe()
			if err != nil {
				p.close()
				return nil, err
			}
			p.files[0] = r
			p.ours = append(p.ours, r)
			// Not waited for: the client may never end its input.
			go func() {
				io.Copy(w, s.Stdin)
				w.Close()
			}()
		}
	}
	for i, out := range []io.Writer{s.Stdout, s.Stderr} {
		if out == nil {
			continue
		}
		if f, ok := out.(*os.File); ok {
			p.files[i+1] = f
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			p.close()
			return nil, err
		}
		p.files[i+1] = w
		p.ours = append(p.ours, w)
		p.mine = append(p.mine, r)
		p.copies.Add(1)
		go func() {
			defer p.copies.Done()
			io.Copy(out, r)
		}()
	}
	return p, nil
}

// started closes the ends the process now holds, so that the copies end
// when the process (and its children) close theirs.
func (p *pipeIO) started() {
	for _, f := range p.ours {
		f.Close()
	}
	p.ours = nil
}

// wait waits until the output has been copied to the client.
func (p *pipeIO) wait() { p.copies.Wait() }

func (p *pipeIO) close() {
	p.started()
	for _, f := range p.mine {
		f.Close()
	}
	p.mine = nil
}

// consoleGrace is how long an exec whose runtime has exited waits for the
// terminal the runtime sent before it did.
const consoleGrace = 2 * time.Second

// execTerminal runs proc with a terminal whose master the runtime sends
// over a console socket, and copies between the master and the client's
// streams, following the client's window size.
func (e *Engine) execTerminal(ctx context.Context, id string, initPid int, rt ociRuntime, proc *specs.Process, detach bool, s *Streams) (int, error) {
	// A socket path must be short (108 bytes): not under the run root.
	dir, err := os.MkdirTemp("", "berth-exec-")
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	defer os.RemoveAll(dir)
	sock, err := monitor.ListenConsole(filepath.Join(dir, "console.sock"))
	if err != nil {
		return 0, err
	}
	defer sock.Close()
	type received struct {
		f   *os.File
		err error
	}
	got := make(chan received, 1)
	go func() {
		f, err := sock.Receive(ctx)
		got <- received{f, err}
	}()
	var master *os.File
	p, err := rt.Exec(ctx, id, proc, execIO{consoleSocket: sock.Path, detach: detach})
	switch {
	case errors.Is(err, errdefs.ErrNotImplemented):
		// A runtime that cannot make the terminal itself: make it in the
		// container's own devpts instance and hand the process its slave.
		sock.Close()
		var slave *os.File
		master, slave, err = openContainerPty(initPid)
		if err != nil {
			return 0, err
		}
		proc.Terminal = false
		p, err = rt.Exec(ctx, id, proc, execIO{stdio: [3]*os.File{slave, slave, slave}, detach: detach})
		slave.Close()
		if err != nil {
			master.Close()
			return 0, execError(err)
		}
	case err != nil:
		return 0, execError(err)
	}
	exited := make(chan struct{})
	var code int
	var waitErr error
	go func() {
		code, waitErr = p.Wait()
		close(exited)
	}()
	if master == nil {
		// The runtime sends the master, unless it fails first.
		select {
		case r := <-got:
			if r.err != nil {
				return 0, r.err
			}
			master = r.f
		case <-exited:
			// The runtime sends the master before it exits, but the
			// receiving goroutine may not have run yet: give it a moment
			// before concluding that nothing came.
			t := time.NewTimer(consoleGrace)
			select {
			case r := <-got:
				t.Stop()
				if r.err != nil {
					return 0, r.err
				}
				master = r.f
			case <-t.C:
				if waitErr == nil && !detach {
					waitErr = fmt.Errorf("OCI runtime exec failed: exited with status %d before sending a terminal", code)
				}
				return code, waitErr
			}
		}
	}
	if detach {
		master.Close()
		return 0, nil
	}
	defer master.Close()
	if s.Resize != nil {
		go func() {
			for sz := range s.Resize {
				monitor.Resize(master, sz[0], sz[1])
			}
		}()
	}
	if s.Stdin != nil {
		go io.Copy(master, s.Stdin)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if s.Stdout != nil {
			// Reading the master ends with EIO once every holder of the
			// slave has closed it.
			io.Copy(s.Stdout, master)
		}
	}()
	stop := forwardSignals(p, s.Signals)
	<-exited
	stop()
	if s.Stdout != nil {
		<-copied
	}
	return code, waitErr
}

// openContainerPty opens a new pty pair in the devpts instance of the
// container whose init is pid, refusing anything that is not a devpts
// master.
func openContainerPty(pid int) (master, slave *os.File, err error) {
	p := "/proc/" + strconv.Itoa(pid) + "/root/dev/pts/ptmx"
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("exec: open the container's ptmx: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.DEVPTS_SUPER_MAGIC {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("exec: the container's /dev/pts/ptmx is not a devpts master")
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("exec: unlock pty: %w", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("exec: open pty peer: %w", errno)
	}
	return os.NewFile(uintptr(fd), "pty-master"), os.NewFile(sfd, "pty-slave"), nil
}

// Exec runs proc with berth's runtime, as a child of this process.
func (r builtinRuntime) Exec(ctx context.Context, id string, proc *specs.Process, o execIO) (execProcess, error) {
	c, err := r.load(ctx, id)
	if err != nil {
		return nil, err
	}
	p, err := c.Exec(ctx, proc, runtime.ExecOptions{Stdin: o.stdio[0], Stdout: o.stdio[1], Stderr: o.stdio[2], ConsoleSocket: o.consoleSocket})
	if err != nil {
		return nil, err
	}
	return builtinProcess{p}, nil
}

// builtinProcess is a process berth's runtime exec'd as our child.
type builtinProcess struct{ *runtime.Process }

func (p builtinProcess) Signal(sig unix.Signal) error { return unix.Kill(p.Pid(), sig) }

// Exec runs proc with `<runtime> exec --process`. In the foreground
// without a terminal the runtime stays as the process's parent and exits
// with its status. Detached, or with a terminal (runc sends a console
// socket the master only when it detaches), the runtime returns once the
// process runs; for a terminal this process becomes a subreaper first, so
// that the orphan comes to it and its status can be waited for.
func (r externalRuntime) Exec(ctx context.Context, id string, proc *specs.Process, o execIO) (execProcess, error) {
	dir, err := os.MkdirTemp("", "berth-exec-")
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	b, err := json.Marshal(proc)
	if err != nil {
		return nil, fmt.Errorf("exec: write process: %w", err)
	}
	procFile, logFile, pidFile := filepath.Join(dir, "process.json"), filepath.Join(dir, "log"), filepath.Join(dir, "pid")
	if err := os.WriteFile(procFile, b, 0o600); err != nil {
		return nil, fmt.Errorf("exec: write process: %w", err)
	}
	args := []string{"--root", r.root, "--log", logFile, "exec", "--process", procFile}
	detach := o.detach || o.consoleSocket != ""
	if o.consoleSocket != "" {
		args = append(args, "--tty", "--console-socket", o.consoleSocket)
	}
	if detach {
		args = append(args, "--detach", "--pid-file", pidFile)
	}
	cmd := exec.Command(r.bin, append(args, id)...)
	// What is not given is /dev/null (exec.Cmd's nil): a detached
	// process must not hold a pipe of ours open.
	if o.stdio[0] != nil {
		cmd.Stdin = o.stdio[0]
	}
	if o.stdio[1] != nil {
		cmd.Stdout = o.stdio[1]
	}
	if o.stdio[2] != nil {
		cmd.Stderr = o.stdio[2]
	}
	if !detach {
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s exec: %w", filepath.Base(r.bin), err)
		}
		keep = true // the runtime may read the process file until it exits
		return cmdProcess{cmd: cmd, dir: dir}, nil
	}
	if o.consoleSocket != "" && !o.detach {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", err)
		}
	}
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("%s exec: %v: %s", filepath.Base(r.bin), err, strings.TrimSpace(string(msg)))
	}
	if o.detach && !o.subreaper {
		return doneProcess{}, nil
	}
	// The orphan came to this process, a subreaper (the monitor, or a
	// terminal's caller above): its status can be waited for.
	pb, err := os.ReadFile(pidFile)
	if err != nil {
		return nil, fmt.Errorf("%s exec: pid file: %w", filepath.Base(r.bin), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pb)))
	if err != nil {
		return nil, fmt.Errorf("%s exec: pid file: %w", filepath.Base(r.bin), err)
	}
	return orphanProcess(pid), nil
}

// orphanProcess is a process an external runtime left to this process as
// its subreaper.
type orphanProcess int

func (p orphanProcess) Signal(sig unix.Signal) error { return unix.Kill(int(p), sig) }

func (p orphanProcess) Wait() (int, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(int(p), &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for %d: %w", int(p), err)
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// cmdProcess waits for an external runtime's foreground exec.
type cmdProcess struct {
	cmd *exec.Cmd
	dir string // the process file's; removed once the runtime is done
}

// Signal signals the runtime, which forwards it to the process.
func (p cmdProcess) Signal(sig unix.Signal) error { return p.cmd.Process.Signal(sig) }

func (p cmdProcess) Wait() (int, error) {
	err := p.cmd.Wait()
	log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
	os.RemoveAll(p.dir)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		// runc and crun exit 255 when the process cannot start; their
		// log says why.
		if code := startFailure(string(log)); ee.ExitCode() == 255 && code != 0 {
			return code, &ExitError{Code: code, Err: fmt.Errorf("OCI runtime exec failed: %s: unknown", lastLogMessage(string(log)))}
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// doneProcess is a detached process nobody here waits for.
type doneProcess struct{}

func (doneProcess) Wait() (int, error)           { return 0, nil }
func (doneProcess) Signal(sig unix.Signal) error { return nil }

// forwardSignals sends what arrives on sigs to p until the returned
// function is called.
func forwardSignals(p execProcess, sigs <-chan os.Signal) func() {
	if sigs == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				if n, ok := sig.(unix.Signal); ok {
					p.Signal(n)
				}
			}
		}
	}()
	return func() { close(done) }
}

// availableCaps is every capability this process may hand on: Docker's
// --privileged set, the capabilities the kernel knows less those missing
// from our own bounding set (a capset asking for more fails).
func availableCaps() []string {
	names := allCaps() // in kernel order: the index is the number
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return names
	}
	for _, l := range strings.Split(string(b), "\n") {
		hex, ok := strings.CutPrefix(l, "CapBnd:")
		if !ok {
			continue
		}
		bnd, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return names
		}
		var out []string
		for i, n := range names {
			if bnd&(1<<i) != 0 {
				out = append(out, n)
			}
		}
		return out
	}
	return names
}

// startFailure maps an external runtime's log of a failed start to
// Docker's exit status: 127 for a command not found, 126 for one that
// cannot be executed, 0 for anything else.
func startFailure(log string) int {
	switch {
	case strings.Contains(log, "executable file not found"), strings.Contains(log, "no such file or directory"):
		return 127
	case strings.Contains(log, "permission denied"):
		return 126
	}
	return 0
}

// lastLogMessage returns the message of the last line of a runtime's
// log (logrus text or JSON, or plain).
func lastLogMessage(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	last := lines[len(lines)-1]
	var entry struct {
		Msg string `json:"msg"`
	}
	if json.Unmarshal([]byte(last), &entry) == nil && entry.Msg != "" {
		return entry.Msg
	}
	if _, msg, ok := strings.Cut(last, "msg="); ok {
		if q, err := strconv.QuotedPrefix(msg); err == nil {
			if m, err := strconv.Unquote(q); err == nil {
				return m
			}
		}
		if f := strings.Fields(msg); len(f) > 0 {
			return f[0]
		}
	}
	return last
}

// exec starts a detached process in a running container for a client: the
// monitor is the process's parent (or, for a runtime that double-forks,
// the subreaper it falls to) and reaps it.
func (m *monitorServer) exec(ctx context.Context, c *monitor.Conn, req monitor.Request) {
	if req.Process == nil {
		c.WriteJSON(errResponse(errdefs.InvalidArgument("exec: no process")))
		return
	}
	rec, err := m.e.containers.Get(ctx, req.ID)
	if err == nil && !rec.State.Running {
		err = errdefs.Conflict("container %s is not running", rec.ID)
	}
	var rt ociRuntime
	if err == nil {
		rt, err = m.e.ociRuntimeFor(rec.HostConfig.Runtime)
	}
	var null *os.File
	if err == nil {
		null, err = os.OpenFile(os.DevNull, os.O_RDWR, 0)
	}
	if err != nil {
		c.WriteJSON(errResponse(err))
		return
	}
	p, err := rt.Exec(context.WithoutCancel(ctx), rec.ID, req.Process, execIO{stdio: [3]*os.File{null, null, null}, detach: true, subreaper: true})
	null.Close()
	if err != nil {
		resp := errResponse(execError(err))
		var ee *ExitError
		if errors.As(execError(err), &ee) {
			resp.ExitCode = ee.Code
		}
		c.WriteJSON(resp)
		return
	}
	go p.Wait()
	c.WriteJSON(monitor.Response{})
}
