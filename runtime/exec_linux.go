package runtime

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime/internal/initproc"
	"github.com/berth-dev/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecOptions are the caller's choices for an extra process.
type ExecOptions struct {
	Stdin, Stdout, Stderr *os.File
	ExtraFiles            []*os.File
	ConsoleSocket         string
	PidFile               string
}

// Process is an extra process started in a container by Exec.
type Process struct {
	proc *child
}

// Pid returns the process's pid.
func (p *Process) Pid() int { return p.proc.pid }

// Wait waits for the process and returns its exit status (128+n when
// killed by signal n).
func (p *Process) Wait() (int, error) {
	return p.proc.wait()
}

// Release lets the process go on without this handle.
func (p *Process) Release() error { p.proc.release(); return nil }

// Exec starts proc inside the running container: in its namespaces and
// cgroup, with proc's own user, capabilities, and the container's seccomp
// filter.
func (c *Container) Exec(ctx context.Context, proc *specs.Process, opts ExecOptions) (*Process, error) {
	if s := c.Status(); s != Running && s != Paused {
		return nil, errdefs.Conflict("container %s is %s", c.st.ID, s)
	}
	if err := ValidateProcess(proc); err != nil {
		return nil, err
	}
	spec, err := c.spec()
	if err != nil {
		return nil, err
	}
	pid := strconv.Itoa(c.st.Pid)
	ns := &nsPlan{}
	defer ns.close()
	for _, n := range spec.Linux.Namespaces {
		flag := nsFlags[n.Type]
		name := map[specs.LinuxNamespaceType]string{
			specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.MountNamespace: "mnt",
			specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.UserNamespace: "user",
			specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
		}[n.Type]
		if n.Type == specs.UserNamespace {
			return nil, errdefs.NotImplemented("exec into a container with a user namespace is not supported")
		}
		f, err := os.Open("/proc/" + pid + "/ns/" + name)
		if err != nil {
			return nil, fmt.Errorf("container namespace %s: %w", name, err)
		}
		if n.Type == specs.MountNamespace {
			ns.mnt = f
			continue
		}
		ns.join = append(ns.join, nsJoin{n.Type, flag, f})
	}
	cfg := &initproc.Config{
		Mode:        initproc.ModeExec,
		Spec:        initSpec(spec),
		Process:     proc,
		Rootfs:      c.st.Rootfs,
		FifoFD:      -1,
		ConsoleFD:   -1,
		MountNSFD:   -1,
		PreserveFDs: len(opts.ExtraFiles),
	}
	if spec.Linux.Seccomp != nil {
		prog, err := seccomp.Compile(spec.Linux.Seccomp)
		if err != nil {
			return nil, errdefs.InvalidArgument("seccomp: %v", err)
		}
		cfg.Seccomp, cfg.SeccompFlags = prog.Bytes(), prog.Flags
	}
	files := append([]*os.File(nil), opts.ExtraFiles...)
	if ns.mnt != nil {
		files = append(files, ns.mnt)
		cfg.MountNSFD = 3 + len(files) - 1
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
		files = append(files, f)
		cfg.ConsoleFD = 3 + len(files) - 1
	}
	sysAttr := &syscall.SysProcAttr{Setsid: proc.Terminal}
	if c.cg.V2() {
		d, err := c.cg.OpenDir()
		if err != nil {
			return nil, err
		}
		defer d.Close()
		sysAttr.UseCgroupFD, sysAttr.CgroupFD = true, int(d.Fd())
	}
	syncParent, syncChild, err := syncPair()
	if err != nil {
		return nil, err
	}
	sp, err := spawn(ns, sysAttr, Options{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr}, files, c.cg, cfg, false, nil, syncParent, syncChild)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Process, error) {
		_ = sp.proc.kill()
		_, _ = sp.proc.wait()
		sp.sync.Close()
		return nil, err
	}
	if err := sp.enc.Encode(initproc.Message{Type: initproc.MsgConfig, Config: cfg}); err != nil {
		return fail(err)
	}
	var m initproc.Message
	if err := sp.dec.Decode(&m); err != nil {
		return fail(fmt.Errorf("exec init exited early"))
	}
	if m.Type == initproc.MsgError {
		return fail(&ProcessError{Code: m.Code, Msg: m.Error})
	}
	if err := sp.enc.Encode(initproc.Message{Type: initproc.MsgStart}); err != nil {
		return fail(err)
	}
	if err := sp.dec.Decode(&m); err == nil && m.Type == initproc.MsgError {
		return fail(&ProcessError{Code: m.Code, Msg: m.Error})
	}
	sp.sync.Close()
	if opts.PidFile != "" {
		if err := writeFileAtomic(opts.PidFile, []byte(strconv.Itoa(sp.proc.pid)), 0o644); err != nil {
			return fail(err)
		}
	}
	return &Process{proc: sp.proc}, nil
}
