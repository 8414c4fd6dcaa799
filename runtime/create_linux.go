package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/berth-dev/berth/errdefs"
	rcgroups "github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/internal/forkinit"
	"github.com/berth-dev/berth/runtime/internal/initproc"
	"github.com/berth-dev/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where container state lives unless Options.Root says
// otherwise.
const DefaultRoot = "/run/berth-runtime"

// Options are the caller's choices for a container.
type Options struct {
	// Root is the state directory (DefaultRoot if empty).
	Root string
	// Stdin, Stdout and Stderr become the process's stdio; nil is
	// /dev/null.
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles are passed to the process as descriptors 3, 4, ...
	ExtraFiles []*os.File
	// ConsoleSocket is the path of a unix socket that receives the pty
	// master when the process has a terminal.
	ConsoleSocket string
	// PidFile, if set, receives the init's pid.
	PidFile string
	// NoPivot uses MS_MOVE and chroot instead of pivot_root (for a root on
	// a ramfs).
	NoPivot bool
	// Template, if set, is where the container's mount namespace is
	// copied from when it suits (see MountTemplate).
	Template *MountTemplate
	// Cache, if set, keeps what creating a container found out (compiled
	// seccomp filters, the cgroup hierarchies) for the next ones.
	Cache *Cache
}

func (o *Options) root() string {
	if o.Root == "" {
		return DefaultRoot
	}
	return o.Root
}

// ProcessError is a failure to start the container's process; ExitCode is
// what a shell would report (127 not found, 126 not executable).
type ProcessError struct {
	Code int
	Msg  string
}

func (e *ProcessError) Error() string { return e.Msg }

// ExitCode returns the exit status the failure maps to.
func (e *ProcessError) ExitCode() int { return e.Code }

// Create creates the container id from the bundle: its namespaces, root
// filesystem and cgroup are set up and its init waits for Start. When it
// fails, nothing is left behind. The init is a child of the calling
// process: call Wait or Release on the returned container.
func Create(ctx context.Context, id, bundle string, opts Options) (*Container, error) {
	return create(ctx, id, bundle, opts, false)
}

// Run creates the container, starts it, waits for its process to exit,
// deletes it and returns the process's exit status (128+n for signal n).
func Run(ctx context.Context, id, bundle string, opts Options) (int, error) {
	c, err := create(ctx, id, bundle, opts, true)
	if err != nil {
		return -1, err
	}
	defer c.Delete(context.WithoutCancel(ctx), true)
	if err := c.Start(ctx); err != nil {
		return -1, err
	}
	return c.Wait(ctx)
}

// spawned is what the creating process holds of an init it started.
type spawned struct {
	fifo bool              // the init waits on the exec FIFO rather than for MsgStart
	prog *forkinit.Program // the fast path's program, or nil for a re-executed init
	proc *child
	sync *os.File
	dec  *json.Decoder
	enc  *json.Encoder
}

func create(ctx context.Context, id, bundle string, opts Options, owned bool) (c *Container, retErr error) {
	tr := newTracer()
	if !validID(id) {
		return nil, errdefs.InvalidArgument("invalid container id %q", id)
	}
	bundle, err := filepath.Abs(bundle)
	if err != nil {
		return nil, err
	}
	spec, rawSeccomp, rawSpec, err := readSpecSeccompLater(bundle)
	if err != nil {
		return nil, err
	}
	// The seccomp profile is decoded and compiled on another thread while
	// this one goes on (unless compiled before); the init's program needs
	// it.
	type compiled struct {
		filter []byte
		flags  uint
		err    error
	}
	var filterc chan compiled
	if f, ok := opts.Cache.get(rawSeccomp); rawSeccomp != nil && ok {
		filterc = make(chan compiled, 1)
		filterc <- compiled{filter: f.filter, flags: f.flags}
	} else if rawSeccomp != nil {
		filterc = make(chan compiled, 1)
		go func() {
			var s specs.LinuxSeccomp
			if err := json.Unmarshal(rawSeccomp, &s); err != nil {
				filterc <- compiled{err: errdefs.InvalidArgument("bundle %s: malformed config.json: seccomp: %v", bundle, err)}
				return
			}
			prog, err := seccomp.Compile(&s)
			if err != nil {
				filterc <- compiled{err: errdefs.InvalidArgument("seccomp: %v", err)}
				return
			}
			f := compiledFilter{filter: prog.Bytes(), flags: prog.Flags}
			opts.Cache.put(rawSeccomp, f)
			filterc <- compiled{filter: f.filter, flags: f.flags}
		}()
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return nil, errdefs.NotFound("rootfs %s: no such directory", rootfs)
	}
	if rootfs, err = filepath.EvalSymlinks(rootfs); err != nil {
		return nil, err
	}
	for i, m := range spec.Mounts {
		if isBindMount(m) && m.Source != "" && !filepath.IsAbs(m.Source) {
			spec.Mounts[i].Source = filepath.Join(bundle, m.Source)
		}
	}
	premade := make(chan struct{})
	go func() {
		defer close(premade)
		premakeMountPoints(rootfs, spec.Mounts)
	}()
	// Nothing of it outlives create.
	defer func() { <-premade }()
	ns, err := planNamespaces(spec)
	if err != nil {
		return nil, err
	}
	defer ns.close()

	root := opts.root()
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("state root: %w", err)
	}
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, errdefs.AlreadyExists("container %s already exists", id)
		}
		return nil, fmt.Errorf("state dir: %w", err)
	}
	var cg *rcgroups.Group
	var sp *spawned
	// The cgroup is made while the rest goes on (see below): made gives
	// the result, once.
	var made chan error
	waitMade := func() error {
		if made == nil {
			return nil
		}
		err := <-made
		made = nil
		return err
	}
	defer func() {
		if retErr == nil {
			return
		}
		if sp != nil {
			_ = sp.proc.kill()
			_, _ = sp.proc.wait()
			sp.sync.Close()
		}
		if cg != nil {
			_ = waitMade()
			_ = cg.Destroy()
		}
		os.RemoveAll(dir)
	}()

	var res *specs.LinuxResources
	cgPath := ""
	if spec.Linux != nil {
		res, cgPath = withDevices(spec.Linux.Resources, spec.Linux.Devices), spec.Linux.CgroupsPath
	}
	tr.mark("spec, state dir")
	if cg, err = rcgroups.New(rcgroups.ResolvePath(cgPath, id), res, opts.Cache.cgroups()); err != nil {
		return nil, err
	}
	v2 := cg.V2()

	proc := spec.Process
	cfg := &initproc.Config{
		Mode:        initproc.ModeCreate,
		Spec:        initSpec(spec),
		Cgroup:      initproc.CgroupMount{V2: v2, Paths: cg.MountPaths()},
		Process:     proc,
		Rootfs:      rootfs,
		NoPivot:     opts.NoPivot,
		OwnMountNS:  ns.flags&unix.CLONE_NEWNS != 0,
		FifoFD:      -1,
		ConsoleFD:   -1,
		MountNSFD:   -1,
		PreserveFDs: len(opts.ExtraFiles),
		Trace:       tr.on,
	}
	files := append([]*os.File(nil), opts.ExtraFiles...)
	addFile := func(f *os.File) int {
		files = append(files, f)
		return 3 + len(files) - 1
	}
	if !owned {
		fifo := filepath.Join(dir, fifoFile)
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			return nil, fmt.Errorf("exec fifo: %w", err)
		}
		// Read-write, so that neither side blocks opening it; the init
		// blocks reading until start writes.
		f, err := os.OpenFile(fifo, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("exec fifo: %w", err)
		}
		defer f.Close()
		cfg.FifoFD = addFile(f)
	}
	if proc.Terminal {
		if opts.ConsoleSocket == "" {
			return nil, errdefs.InvalidArgument("process.terminal needs a console socket")
		}
		f, err := dialUnix(opts.ConsoleSocket)
		if err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
		defer f.Close()
		cfg.ConsoleFD = addFile(f)
	}
	if ns.mnt != nil {
		cfg.MountNSFD = addFile(ns.mnt)
	}
	_, forceReexec := os.LookupEnv("BERTH_RUNTIME_REEXEC_INIT")
	fast := forkinit.Supported(cfg) && !forceReexec
	if fast && opts.Template.suits(spec, ns) {
		// The init attaches a detached copy of its root (see MountTemplate).
		if fd, err := unix.OpenTree(unix.AT_FDCWD, rootfs, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC); err == nil {
			f := os.NewFile(uintptr(fd), "rootfs")
			defer f.Close()
			cfg.RootFD = addFile(f)
		}
	}
	// The cgroup is made on another thread while this one builds the init
	// and clones it. On v2 the init is cloned into its cgroup
	// (CLONE_INTO_CGROUP), and on v1 a re-executed init is born in it too
	// (the cloning thread enters it first): the clone waits for the whole
	// group. On v1 the fast path's child waits only for its directories
	// (MakeDirs): it makes its mounts and device nodes meanwhile, then
	// moves itself in while the parent sets the group's resources.
	var join []string
	if fast && !v2 {
		join = cg.JoinFiles()
	}
	late := len(join) > 0
	syncParent, syncChild, err := syncPair()
	if err != nil {
		return nil, err
	}
	defer func() {
		if sp == nil {
			syncParent.Close()
			syncChild.Close()
		}
	}()
	made = make(chan error, 1)
	go func() {
		if !late {
			made <- cg.Make()
			return
		}
		err := cg.MakeDirs()
		// The child waits for this before it joins; the byte waits in the
		// socket if the child is not there yet. A failed write means the
		// child is gone, which its own message says.
		_ = forkinit.Go(syncParent, err == nil)
		made <- err
	}()
	sysAttr := &syscall.SysProcAttr{Cloneflags: ns.flags, Setsid: proc.Terminal}
	if ns.flags&unix.CLONE_NEWUSER != 0 {
		// Become root of the new user namespace (the mapped uid 0) before
		// exec, or the exec would drop every capability.
		sysAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		for _, m := range spec.Linux.UIDMappings {
			sysAttr.UidMappings = append(sysAttr.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		for _, m := range spec.Linux.GIDMappings {
			sysAttr.GidMappings = append(sysAttr.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		sysAttr.GidMappingsEnableSetgroups = true
	}
	hooks := spec.Hooks
	if hooks != nil {
		//lint:ignore SA1019 prestart is deprecated, still honoured
		cfg.SyncCreateRuntime = len(hooks.CreateRuntime) > 0 || len(hooks.Prestart) > 0
	}

	st := &saved{ID: id, Bundle: bundle, Rootfs: rootfs, Created: time.Now().UTC(), Owner: "root", Annotations: spec.Annotations}
	if h := spec.Hooks; h != nil && (len(h.Poststart) > 0 || len(h.Poststop) > 0) {
		st.Hooks = &specs.Hooks{Poststart: h.Poststart, Poststop: h.Poststop}
	}
	if hooks != nil && (len(hooks.CreateContainer) > 0 || len(hooks.StartContainer) > 0) {
		// Hooks inside the container see a pid of 0 for now: the init's pid
		// in the host is not known before clone.
		cfg.State, _ = json.Marshal(specState(st, Creating))
	}

	if !late {
		if err := waitMade(); err != nil {
			cg = nil // Make left nothing
			return nil, err
		}
		tr.mark("cgroup create")
	}
	if v2 {
		// Born in its cgroup: no window where the init runs outside it, and
		// no write to cgroup.procs afterwards.
		d, err := cg.OpenDir()
		if err != nil {
			return nil, err
		}
		defer d.Close()
		sysAttr.UseCgroupFD = true
		sysAttr.CgroupFD = int(d.Fd())
	}
	if filterc != nil {
		c := <-filterc
		if c.err != nil {
			return nil, c.err
		}
		cfg.Seccomp, cfg.SeccompFlags = c.filter, c.flags
	}
	sp, err = spawn(ns, sysAttr, opts, files, cg, cfg, fast, join, syncParent, syncChild)
	if err != nil {
		return nil, err
	}
	sp.fifo = cfg.FifoFD >= 0
	tr.mark("spawn init")
	if late {
		// What the child waits for first: a group to join. Its resources
		// are set below, while the child goes on (before anything of the
		// container runs: that waits for the init's ready).
		if err := waitMade(); err != nil {
			cg = nil // MakeDirs left nothing
			return nil, err
		}
		tr.mark("cgroup made (late)")
	}
	st.Pid = sp.proc.pid
	st.Cgroup = cg.Config()
	if err := sp.configure(cfg); err != nil {
		return nil, err
	}
	if st.Start, err = pidStartTime(st.Pid); err != nil {
		// It failed already: its message says why.
		if _, nerr := sp.next(); nerr != nil {
			if _, ok := nerr.(*ProcessError); !ok {
				sp = nil // reaped
			}
			return nil, nerr
		}
		return nil, fmt.Errorf("container init died: %w", err)
	}
	if err := st.write(dir); err != nil {
		return nil, err
	}
	// The spec as it was at create: later changes to the bundle do not
	// affect the container. Written while the init works, as the state is.
	if err := os.WriteFile(filepath.Join(dir, specFile), rawSpec, 0o600); err != nil {
		return nil, fmt.Errorf("save spec: %w", err)
	}
	if late {
		if err := cg.SetResources(); err != nil {
			return nil, err
		}
		tr.mark("cgroup resources (late)")
	}
	for {
		ev, err := sp.next()
		if err != nil {
			if _, ok := err.(*ProcessError); !ok {
				sp = nil // reaped
			}
			return nil, err
		}
		if ev == evReady {
			break
		}
		s := specState(st, Creating)
		herr := runHooks(ctx, "createRuntime", hooks.CreateRuntime, s)
		if herr == nil {
			//lint:ignore SA1019 prestart is deprecated, still honoured
			herr = runHooks(ctx, "prestart", hooks.Prestart, s)
		}
		if err := sp.answerHooks(herr); err != nil {
			return nil, err
		}
		if herr != nil {
			return nil, herr
		}
	}
	tr.mark("init ready")
	if opts.PidFile != "" {
		if err := writeFileAtomic(opts.PidFile, []byte(strconv.Itoa(st.Pid)), 0o644); err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
	}
	tr.mark("state saved")
	return &Container{dir: dir, st: st, cg: cg, sp: sp, tr: tr}, nil
}

// spawn starts the container's init and returns what the parent holds of
// it. With fast set (forkinit.Supported), the init is a forked child of
// this process running a program of system calls compiled from cfg; else it
// is this binary re-executed, from a read-only mount of itself, and sent
// cfg (package initproc). Either way the clone happens on a thread of ours
// that first enters the cgroup (v1; on v2 the clone goes into it) and the
// namespaces to join; a thread whose namespaces changed is never given back
// to the Go scheduler.
//
// With join set (fast path, cgroup v1: the group's tasks files), the child
// joins the cgroup itself once the parent has made it and says so
// (forkinit.Go).
//
// parent and childEnd are the sync socket's ends (syncPair): spawn closes
// the child's end, and the parent's too when it fails.
func spawn(ns *nsPlan, sysAttr *syscall.SysProcAttr, opts Options, files []*os.File, cg *rcgroups.Group, cfg *initproc.Config, fast bool, join []string, parent, childEnd *os.File) (*spawned, error) {
	tr := newTracer()
	defer childEnd.Close()
	syncFD := 3 + len(files)
	files = append(files, childEnd)

	var opened []*os.File
	defer func() {
		for _, f := range opened {
			f.Close()
		}
	}()
	devnull := func(f *os.File) *os.File {
		if f != nil {
			return f
		}
		n, err := os.Open(os.DevNull)
		if err != nil {
			return nil
		}
		opened = append(opened, n)
		return n
	}
	// Every file whose descriptor is passed must stay reachable until the
	// clone, or a finalizer may close it first.
	keep := append([]*os.File{devnull(opts.Stdin), devnull(opts.Stdout), devnull(opts.Stderr)}, files...)
	defer goruntime.KeepAlive(keep)

	var launch func() (*child, error)
	var prog *forkinit.Program
	var err error
	if fast {
		if prog, err = forkinit.Build(cfg, len(keep), syncFD, join); err != nil {
			parent.Close()
			return nil, errdefs.InvalidArgument("%v", err)
		}
		tr.mark("  build program")
		cgroupFD := -1
		if sysAttr.UseCgroupFD {
			cgroupFD = sysAttr.CgroupFD
		}
		launch = func() (*child, error) {
			pid, pidfd, err := prog.Start(sysAttr.Cloneflags, keep, cgroupFD)
			if err != nil {
				return nil, err
			}
			return &child{pid: pid, pidfd: pidfd}, nil
		}
	} else {
		exe, err := selfExe()
		if err != nil {
			parent.Close()
			return nil, fmt.Errorf("open runtime binary: %w", err)
		}
		defer exe.Close()
		var fds []uintptr
		for _, f := range keep {
			fds = append(fds, f.Fd())
		}
		pidfd := -1
		sysAttr.PidFD = &pidfd
		attr := &syscall.ProcAttr{
			// One P and no GC: the init lives a few milliseconds, and spare
			// Ps only make the Go runtime start threads that spin.
			Env:   []string{initproc.EnvInit + "=" + strconv.Itoa(syncFD), "GOMAXPROCS=1", "GOGC=off"},
			Files: fds,
			Sys:   sysAttr,
		}
		// The child resolves this path after its descriptors are moved into
		// place (0..len(keep)-1), so the binary's must be above them, and
		// above the numbers syscall.forkAndExecInChild moves descriptors to
		// on the way, over whatever is there: from the highest descriptor
		// passed, plus one, up, its error pipe and any descriptor below its
		// place. Right above the highest one, the binary's descriptor was
		// overwritten now and then, and the exec failed with EACCES.
		above := len(keep)
		for _, fd := range fds {
			above = max(above, int(fd)+1)
		}
		high, err := unix.FcntlInt(exe.Fd(), unix.F_DUPFD_CLOEXEC, above+len(keep)+2)
		if err != nil {
			parent.Close()
			return nil, fmt.Errorf("open runtime binary: %w", err)
		}
		defer unix.Close(high)
		path := "/proc/self/fd/" + strconv.Itoa(high)
		launch = func() (*child, error) {
			pid, err := syscall.ForkExec(path, []string{initproc.Argv0}, attr)
			if err != nil {
				return nil, err
			}
			return &child{pid: pid, pidfd: pidfd}, nil
		}
	}
	// run clones on the calling thread, locked; it reports whether the
	// thread is as it was (and may go back to the scheduler).
	run := func() (*child, bool, error) {
		var leave func() error
		if !cg.V2() && len(join) == 0 {
			var err error
			if leave, err = cg.EnterThread(); err != nil {
				return nil, false, err
			}
			tr.mark("  enter cgroup")
		}
		for _, j := range ns.join {
			if err := unix.Setns(int(j.f.Fd()), j.flag); err != nil {
				return nil, false, fmt.Errorf("join %s namespace %s: %w", j.typ, j.f.Name(), err)
			}
		}
		p, err := launch()
		tr.mark("  clone")
		clean := len(ns.join) == 0
		if leave != nil {
			if lerr := leave(); lerr != nil {
				clean = false
				if err == nil {
					_ = p.kill()
					_, _ = p.wait()
					p, err = nil, lerr
				}
			}
		}
		return p, clean, err
	}
	var p *child
	fromTemplate := false
	if cfg.RootFD > 0 {
		var lerr error
		err = opts.Template.run(ns.join, func() { p, lerr = launch() })
		if fromTemplate = err != errTemplateGone; fromTemplate && err == nil {
			err = lerr
		}
		// Gone, the clone is made from here as below: the init then
		// attaches its root over the one it sees, the same file system.
	}
	if fromTemplate {
		tr.mark("  clone (template)")
	} else if len(ns.join) == 0 {
		goruntime.LockOSThread()
		var clean bool
		p, clean, err = run()
		if clean {
			goruntime.UnlockOSThread()
		}
	} else {
		type result struct {
			p   *child
			err error
		}
		ch := make(chan result, 1)
		goLockedForGood(func() { // see above
			p, _, err := run()
			ch <- result{p, err}
		})
		r := <-ch
		p, err = r.p, r.err
	}
	tr.mark("  leave cgroup")
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container init: %w", err)
	}
	return &spawned{proc: p, sync: parent, dec: json.NewDecoder(parent), enc: json.NewEncoder(parent), prog: prog}, nil
}

// syncPair makes the socket the runtime and a starting init talk over.
func syncPair() (parent, child *os.File, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("sync socket: %w", err)
	}
	return os.NewFile(uintptr(pair[0]), "sync"), os.NewFile(uintptr(pair[1]), "sync-child"), nil
}

type nsJoin struct {
	typ  specs.LinuxNamespaceType
	flag int
	f    *os.File
}

// nsPlan is how the init gets its namespaces: clone flags for new ones,
// files for the ones to join.
type nsPlan struct {
	flags uintptr
	join  []nsJoin
	mnt   *os.File
}

func (p *nsPlan) close() {
	for _, j := range p.join {
		j.f.Close()
	}
	if p.mnt != nil {
		p.mnt.Close()
	}
}

var nsFlags = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace: unix.CLONE_NEWNS, specs.IPCNamespace: unix.CLONE_NEWIPC,
	specs.UTSNamespace: unix.CLONE_NEWUTS, specs.UserNamespace: unix.CLONE_NEWUSER,
	specs.CgroupNamespace: unix.CLONE_NEWCGROUP, specs.TimeNamespace: unix.CLONE_NEWTIME,
}

func planNamespaces(spec *specs.Spec) (*nsPlan, error) {
	p := &nsPlan{}
	if spec.Linux == nil {
		return p, nil
	}
	for _, n := range spec.Linux.Namespaces {
		flag := nsFlags[n.Type]
		if n.Path == "" {
			p.flags |= uintptr(flag)
			continue
		}
		f, err := os.Open(n.Path)
		if err != nil {
			p.close()
			return nil, errdefs.NotFound("%s namespace %s: %v", n.Type, n.Path, err)
		}
		switch n.Type {
		case specs.MountNamespace:
			p.mnt = f
		case specs.UserNamespace:
			f.Close()
			p.close()
			return nil, errdefs.NotImplemented("joining a user namespace by path is not supported")
		default:
			p.join = append(p.join, nsJoin{n.Type, flag, f})
		}
	}
	return p, nil
}

// withDevices returns the resources with the devices the spec lists for
// the container allowed in its device cgroup (after the spec's own rules),
// as runc does: a device the container is given is one it may use.
func withDevices(r *specs.LinuxResources, devs []specs.LinuxDevice) *specs.LinuxResources {
	if len(devs) == 0 {
		return r
	}
	var c specs.LinuxResources
	if r != nil {
		c = *r
	}
	c.Devices = append([]specs.LinuxDeviceCgroup(nil), c.Devices...)
	for _, d := range devs {
		typ := d.Type
		switch typ {
		case "u":
			typ = "c"
		case "c", "b":
		default:
			continue
		}
		major, minor := d.Major, d.Minor
		c.Devices = append(c.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	return &c
}

// initSpec is the part of the spec the init uses: resources and the
// seccomp rules (compiled already) stay out of what it has to decode.
func initSpec(s *specs.Spec) *specs.Spec {
	c := *s
	c.Process = nil
	c.Annotations = nil
	if s.Linux != nil {
		l := *s.Linux
		l.Resources = nil
		l.Seccomp = nil
		c.Linux = &l
	}
	if s.Hooks != nil {
		c.Hooks = &specs.Hooks{CreateContainer: s.Hooks.CreateContainer, StartContainer: s.Hooks.StartContainer}
	}
	return &c
}

func isBindMount(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func dialUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

func specState(st *saved, status Status) specs.State {
	ann := st.Annotations
	return specs.State{
		Version:     specs.Version,
		ID:          st.ID,
		Status:      specs.ContainerState(status),
		Pid:         st.Pid,
		Bundle:      st.Bundle,
		Annotations: ann,
	}
}
