package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The hook that turns this process into a container init. See the package
// documentation for why this is an init function.
func init() {
	v, ok := os.LookupEnv(EnvInit)
	if !ok {
		return
	}
	fd, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-runtime init: bad %s=%q\n", EnvInit, v)
		os.Exit(1)
	}
	start := time.Now()
	// Package initialisation runs on the main goroutine locked to the main
	// thread: every per-thread call below (setns, capset, setresuid) acts on
	// the thread that will execve.
	os.Exit(run(fd, start))
}

// trace prints when a step was reached, for BERTH_RUNTIME_TRACE.
func (s *session) trace(what string) {
	if s.c.Trace {
		now := time.Now()
		fmt.Fprintf(os.Stderr, "trace: init %-19s %6.2f ms  @%d\n", what, float64(now.Sub(s.last).Microseconds())/1000, now.UnixMicro()%1000000)
		s.last = now
	}
}

// initError is a setup failure with the exit code the CLI should report.
type initError struct {
	code int
	err  error
}

func (e *initError) Error() string { return e.err.Error() }
func (e *initError) Unwrap() error { return e.err }

// run is the whole life of the init. It returns only on failure.
func run(syncFD int, start time.Time) int {
	sync := os.NewFile(uintptr(syncFD), "sync")
	unix.CloseOnExec(syncFD)
	dec := json.NewDecoder(sync)
	enc := json.NewEncoder(sync)
	var m Message
	if err := dec.Decode(&m); err != nil || m.Config == nil {
		fmt.Fprintf(os.Stderr, "berth-runtime init: read config: %v\n", err)
		return 1
	}
	c := m.Config
	s := &session{c: c, dec: dec, enc: enc, last: start}
	s.trace("config read")
	err := s.setup()
	if err == nil {
		err = s.waitAndExec()
	}
	code := 1
	var ie *initError
	if errors.As(err, &ie) {
		code = ie.code
	}
	if !s.ready {
		_ = enc.Encode(Message{Type: MsgError, Error: err.Error(), Code: code})
	} else {
		fmt.Fprintf(os.Stderr, "berth-runtime: %v\n", err)
	}
	return code
}

type session struct {
	c     *Config
	dec   *json.Decoder
	enc   *json.Encoder
	ready bool      // MsgReady was sent
	path  string    // resolved executable
	last  time.Time // for trace
}

func (s *session) setup() error {
	c := s.c
	if c.MountNSFD >= 0 {
		// setns into a mount namespace is refused to a thread sharing its
		// fs_struct with others; this thread stops sharing it first.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare fs: %w", err)
		}
		if err := unix.Setns(c.MountNSFD, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("join mount namespace: %w", err)
		}
		unix.Close(c.MountNSFD)
	}
	if c.Mode == ModeCreate {
		if err := s.setupContainer(); err != nil {
			return err
		}
	} else if c.Process.Terminal {
		root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = s.setupConsole(root, false)
		unix.Close(root)
		if err != nil {
			return fmt.Errorf("set up console: %w", err)
		}
	}
	p := c.Process
	if p.Cwd != "" {
		if err := unix.Chdir(p.Cwd); err != nil {
			return fmt.Errorf("chdir to cwd %q: %w", p.Cwd, err)
		}
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("set oom_score_adj: %w", err)
		}
	}
	path, err := lookPath(p.Args, p.Env)
	if err != nil {
		return err
	}
	s.path = path
	return nil
}

// setupContainer prepares the new container's namespaces and root.
func (s *session) setupContainer() error {
	c := s.c
	spec := c.Spec
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("set domainname: %w", err)
		}
	}
	// Without a mount namespace of its own, the container shares the
	// host's: nothing is mounted (it would be the host's mounts), the init
	// only changes root, as runc does.
	ownMounts := c.MountNSFD >= 0 || c.OwnMountNS
	if ownMounts {
		if err := s.prepareRoot(); err != nil {
			return err
		}
		s.trace("mounts")
	}
	if c.SyncCreateRuntime {
		if err := s.enc.Encode(Message{Type: MsgCreateRuntime}); err != nil {
			return err
		}
		m, err := s.recv()
		if err != nil {
			return fmt.Errorf("wait for createRuntime hooks: %w", err)
		}
		if m.Type != MsgOK {
			return errors.New(m.Error)
		}
	}
	if spec.Hooks != nil {
		if err := runHooks("createContainer", spec.Hooks.CreateContainer, c.State); err != nil {
			return err
		}
	}
	if !ownMounts {
		if err := unix.Chroot(c.Rootfs); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		return unix.Chdir("/")
	}
	if err := s.enterRoot(); err != nil {
		return err
	}
	s.trace("pivot_root")
	if spec.Linux != nil {
		for k, v := range spec.Linux.Sysctl {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("set sysctl %s: %w", k, err)
			}
		}
	}
	return s.finishRoot()
}

// waitAndExec reports ready, waits for the start signal and becomes the
// container's process.
func (s *session) waitAndExec() error {
	c := s.c
	p := c.Process
	if err := s.enc.Encode(Message{Type: MsgReady}); err != nil {
		return err
	}
	s.ready = true
	if c.FifoFD >= 0 {
		var b [1]byte
		for {
			n, err := unix.Read(c.FifoFD, b[:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("wait for start: %w", err)
			}
			if n == 1 {
				break
			}
		}
		unix.Close(c.FifoFD)
	} else {
		m, err := s.recv()
		if err != nil {
			return fmt.Errorf("wait for start: %w", err)
		}
		if m.Type != MsgStart {
			return fmt.Errorf("wait for start: got %q", m.Type)
		}
	}
	if c.Mode == ModeCreate && c.Spec.Hooks != nil {
		if err := runHooks("startContainer", c.Spec.Hooks.StartContainer, c.State); err != nil {
			return err
		}
	}
	// Nothing of the runtime's may reach the process: every descriptor past
	// stdio and the preserved ones is closed on exec (the sync socket too,
	// which tells a waiting parent that exec happened).
	if err := unix.CloseRange(uint(3+c.PreserveFDs), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close descriptors: %w", err)
	}
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	var caps *specs.LinuxCapabilities = p.Capabilities
	if len(c.Seccomp) > 0 && !p.NoNewPrivileges {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
		// the process may be about to lose.
		if err := loadSeccomp(c.Seccomp, c.SeccompFlags); err != nil {
			return err
		}
	}
	if err := setIdentity(p.User, caps); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
		if len(c.Seccomp) > 0 {
			if err := loadSeccomp(c.Seccomp, c.SeccompFlags); err != nil {
				return err
			}
		}
	}
	err := unix.Exec(s.path, p.Args, p.Env)
	code := 126
	if err == unix.ENOENT {
		code = 127
	}
	return &initError{code: code, err: fmt.Errorf("exec %q: %w", p.Args[0], err)}
}

// Candidates lists the paths exec tries for name: name itself if it has a
// slash, else name in each directory of PATH (from env, or the default).
func Candidates(name string, env []string) []string {
	if strings.Contains(name, "/") {
		return []string{name}
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	var out []string
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		out = append(out, dir+"/"+name)
	}
	return out
}

// lookPath resolves args[0] through PATH from env, in the container's view.
func lookPath(args, env []string) (string, error) {
	if len(args) == 0 {
		return "", &initError{code: 1, err: errors.New("process.args is empty")}
	}
	var firstErr error
	for _, p := range Candidates(args[0], env) {
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		var ie *initError
		if firstErr == nil && errors.As(err, &ie) && ie.code == 126 {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	if strings.Contains(args[0], "/") {
		return "", &initError{code: 127, err: fmt.Errorf("exec: %q: no such file or directory", args[0])}
	}
	return "", &initError{code: 127, err: fmt.Errorf("exec: %q: executable file not found in $PATH", args[0])}
}

func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return &initError{code: 127, err: fmt.Errorf("exec: %q: no such file or directory", p)}
		}
		return &initError{code: 126, err: fmt.Errorf("exec: %q: %w", p, err)}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Mode&0o111 == 0 {
		return &initError{code: 126, err: fmt.Errorf("exec: %q: permission denied", p)}
	}
	return nil
}

// runHooks runs hooks in the init's namespaces, each given the state on
// stdin.
func runHooks(kind string, hooks []specs.Hook, state []byte) error {
	for _, h := range hooks {
		if err := runHook(h, state); err != nil {
			return fmt.Errorf("%s hook %s: %w", kind, h.Path, err)
		}
	}
	return nil
}

func runHook(h specs.Hook, state []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	p, err := os.StartProcess(h.Path, args, &os.ProcAttr{
		Env:   h.Env,
		Files: []*os.File{r, os.Stderr, os.Stderr},
	})
	r.Close()
	if err != nil {
		w.Close()
		return err
	}
	_, _ = w.Write(state)
	w.Close()
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return fmt.Errorf("exited: %v", st)
	}
	return nil
}

// recv reads the next message from the parent.
func (s *session) recv() (Message, error) {
	var m Message
	err := s.dec.Decode(&m)
	return m, err
}
