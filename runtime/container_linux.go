package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	rcgroups "github.com/berth-dev/berth/runtime/cgroups"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Container is a handle on a container's state. A handle from Load reads
// the state on disk; the one Create returns also knows the init it started.
type Container struct {
	dir string
	st  *saved
	cg  *rcgroups.Group
	sp  *spawned // set in the process that created the container with Run
	tr  *tracer
}

// Load returns the container id under root (DefaultRoot if empty).
func Load(ctx context.Context, root, id string) (*Container, error) {
	if root == "" {
		root = DefaultRoot
	}
	if !validID(id) {
		return nil, errdefs.InvalidArgument("invalid container id %q", id)
	}
	dir := filepath.Join(root, id)
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("container %s does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	var st saved
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, errdefs.DataCorrupt("container %s: state: %v", id, err)
	}
	cg, err := rcgroups.Load(st.Cgroup)
	if err != nil {
		return nil, err
	}
	return &Container{dir: dir, st: &st, cg: cg}, nil
}

// List returns the containers under root.
func List(ctx context.Context, root string) ([]*Container, error) {
	if root == "" {
		root = DefaultRoot
	}
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		c, err := Load(ctx, root, e.Name())
		if err != nil {
			continue // being created or deleted
		}
		out = append(out, c)
	}
	return out, nil
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.st.ID }

// Pid returns the pid of the container's init.
func (c *Container) Pid() int { return c.st.Pid }

// Release lets the container's init go on without this handle: a handle
// that Create returned holds the init as a child of this process until
// Wait or Release.
func (c *Container) Release() { c.release() }

func (c *Container) release() {
	if c.sp != nil {
		c.sp.sync.Close()
		c.sp.proc.release()
		c.sp = nil
	}
}

// alive reports whether the init still runs (and is the same process).
func (c *Container) alive() bool {
	t, err := pidStartTime(c.st.Pid)
	return err == nil && t == c.st.Start
}

// Status returns the container's lifecycle state.
func (c *Container) Status() Status {
	if !c.alive() {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, fifoFile)); err == nil {
		return Created
	}
	if c.cg.Frozen() {
		return Paused
	}
	return Running
}

// State returns the container's state as `state` prints it.
func (c *Container) State(ctx context.Context) State {
	status := c.Status()
	s := specState(c.st, status)
	if status == Stopped {
		s.Pid = 0
	}
	return State{State: s, Status: status, Rootfs: c.st.Rootfs, Created: c.st.Created, Owner: c.st.Owner}
}

// Start lets the created container's process run. In the process that
// created the container, it returns once the process has exec'd (or failed
// to); elsewhere, once the init has been told to.
func (c *Container) Start(ctx context.Context) error {
	sp := c.sp
	if sp != nil && !sp.fifo {
		if err := sp.signalStart(); err != nil {
			return fmt.Errorf("signal start: %w", err)
		}
	} else {
		switch s := c.Status(); s {
		case Created:
		case Stopped:
			return errdefs.Conflict("container %s is stopped", c.st.ID)
		default:
			return errdefs.Conflict("container %s is already %s", c.st.ID, s)
		}
		fifo := filepath.Join(c.dir, fifoFile)
		fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			if err == unix.ENXIO {
				return errdefs.Conflict("container %s: init is not waiting", c.st.ID)
			}
			return fmt.Errorf("open exec fifo: %w", err)
		}
		_, err = unix.Write(fd, []byte{0})
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("signal start: %w", err)
		}
		os.Remove(fifo)
		// The init's end of the FIFO is closed on exec: POLLERR on ours says
		// the process runs (or the init died), so that a signal sent right
		// after start reaches the process, not an init that drops it. No
		// timer involved.
		fds := []unix.PollFd{{Fd: int32(fd)}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		unix.Close(fd)
	}
	if sp != nil {
		// The init's end of the sync socket closes on exec.
		if err := sp.waitExec(); err != nil {
			return err
		}
	}
	c.trace("started (exec)")
	c.postStart(ctx)
	return nil
}

func (c *Container) postStart(ctx context.Context) {
	if h := c.st.Hooks; h != nil && len(h.Poststart) > 0 {
		if err := runHooks(ctx, "poststart", h.Poststart, specState(c.st, Running)); err != nil {
			fmt.Fprintf(os.Stderr, "berth-runtime: warning: %v\n", err)
		}
	}
}

// Wait waits for the process of a container this process created, and
// returns its exit status (128+n when killed by signal n).
func (c *Container) Wait(ctx context.Context) (int, error) {
	if c.sp == nil {
		return -1, errdefs.InvalidArgument("container %s was not created by this process", c.st.ID)
	}
	code, err := c.sp.proc.wait()
	c.trace("process exited")
	return code, err
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func (c *Container) Kill(ctx context.Context, sig unix.Signal, all bool) error {
	if all {
		return c.cg.KillAll(sig)
	}
	s := c.Status()
	if s == Stopped {
		return errdefs.Conflict("container %s is not running", c.st.ID)
	}
	fd, err := c.pidfd()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("kill container %s: %w", c.st.ID, err)
	}
	if s == Paused && (sig == unix.SIGKILL || sig == unix.SIGTERM) {
		_ = c.cg.Freeze(false)
	}
	return nil
}

// pidfd opens a pidfd of the init, checking it is still the same process.
func (c *Container) pidfd() (int, error) {
	fd, err := unix.PidfdOpen(c.st.Pid, 0)
	if err != nil {
		return -1, errdefs.Conflict("container %s is not running", c.st.ID)
	}
	if !c.alive() {
		unix.Close(fd)
		return -1, errdefs.Conflict("container %s is not running", c.st.ID)
	}
	return fd, nil
}

// Delete removes a container: its cgroup, its state, and runs its
// poststop hooks. A running container is refused unless force is set, in
// which case it is killed first; a created one is killed.
func (c *Container) Delete(ctx context.Context, force bool) error {
	if c.sp != nil {
		c.sp.sync.Close()
	}
	switch s := c.Status(); s {
	case Stopped:
	case Created:
		c.killWait()
	default:
		if !force {
			return errdefs.Conflict("cannot delete container %s that is %s (use --force)", c.st.ID, s)
		}
		c.killWait()
	}
	if c.sp != nil {
		_, _ = c.sp.proc.wait()
		c.sp = nil
	}
	var errs []error
	poststop := c.st.Hooks != nil && len(c.st.Hooks.Poststop) > 0
	var removed chan error
	if !poststop {
		// Nothing runs between the two: the state goes as the cgroup does.
		removed = make(chan error, 1)
		go func() { removed <- os.RemoveAll(c.dir) }()
	}
	if err := c.cg.Destroy(); err != nil {
		errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
	}
	c.trace("cgroup removed")
	if poststop {
		if err := runHooks(ctx, "poststop", c.st.Hooks.Poststop, specState(c.st, Stopped)); err != nil {
			fmt.Fprintf(os.Stderr, "berth-runtime: warning: %v\n", err)
		}
		removed = make(chan error, 1)
		removed <- os.RemoveAll(c.dir)
	}
	if err := <-removed; err != nil {
		errs = append(errs, err)
	}
	c.trace("deleted")
	return errors.Join(errs...)
}

// killWait kills the init and waits for it to be gone, through a pidfd:
// no polling, no timer.
func (c *Container) killWait() {
	fd, err := c.pidfd()
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = c.cg.Freeze(false)
	_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err != unix.EINTR {
			return
		}
	}
}

// Pause freezes every process of the container.
func (c *Container) Pause(ctx context.Context) error {
	if s := c.Status(); s != Running && s != Created {
		return errdefs.Conflict("container %s is %s", c.st.ID, s)
	}
	return c.cg.Freeze(true)
}

// Resume thaws a paused container.
func (c *Container) Resume(ctx context.Context) error {
	if s := c.Status(); s != Paused {
		return errdefs.Conflict("container %s is not paused", c.st.ID)
	}
	return c.cg.Freeze(false)
}

// Processes lists the pids in the container's cgroup.
func (c *Container) Processes(ctx context.Context) ([]int, error) { return c.cg.Pids() }

// Stats returns the container's cgroup statistics.
func (c *Container) Stats(ctx context.Context) (*cgroups.Stats, error) { return c.cg.Stats() }

// OOMKills returns how many of the container's processes the OOM killer
// killed.
func (c *Container) OOMKills(ctx context.Context) (uint64, error) { return c.cg.OOMKills() }

// pidStartTime returns field 22 of /proc/pid/stat (start time), or an
// error if the process is gone or a zombie.
func pidStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("bad stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("process exited")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func (c *Container) trace(what string) {
	if c.tr != nil {
		c.tr.mark(what)
	}
}

// spec returns the container's spec as it was created.
func (c *Container) spec() (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, specFile))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.st.ID, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, errdefs.DataCorrupt("container %s: spec: %v", c.st.ID, err)
	}
	return &s, nil
}
