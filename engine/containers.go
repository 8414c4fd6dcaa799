package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/procfs"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/snapshot"
)

// CreateOptions are what `create` and `run` were asked for: Docker's
// Config and HostConfig, the image, the name, and the command.
type CreateOptions struct {
	Name  string
	Image string
	// Cmd is the command given after the image; empty keeps the image's.
	Cmd []string
	// Entrypoint, when not nil, replaces the image's ("" clears it).
	Entrypoint *string
	Config     container.Config
	HostConfig container.HostConfig
	// Publish are -p specs; Aliases, IP, MAC the container's
	// --network-alias, --ip and --mac-address.
	Publish []string
	Aliases []string
	IP, MAC string
	// MountRoot is for a start that follows at once (run; see
	// StartCreated): the container's root is mounted while its record is
	// written, and the monitor uses it instead of mounting it on its own
	// path; and the monitor is asked meanwhile to prepare the start (see
	// prepareStart).
	MountRoot bool
}

// portBindings renders -p specs as Docker's HostConfig.PortBindings.
func portBindings(specs []string) map[string][]container.PortBinding {
	ms, err := network.ParsePorts(specs)
	if err != nil || len(ms) == 0 {
		return nil
	}
	out := map[string][]container.PortBinding{}
	for _, m := range ms {
		key := fmt.Sprintf("%d/%s", m.ContainerPort, m.Proto)
		b := container.PortBinding{}
		if m.HostIP.IsValid() {
			b.HostIP = m.HostIP.String()
		}
		if m.HostPort != 0 {
			b.HostPort = fmt.Sprint(m.HostPort)
		}
		out[key] = append(out[key], b)
	}
	return out
}

// CreateContainer makes a container from an image: its record, its name
// and its writable root file system. Nothing runs yet.
func (e *Engine) CreateContainer(ctx context.Context, opts CreateOptions) (c *container.Container, err error) {
	// encoding/json builds its encoder for the record's types (Docker's
	// inspect shape: hundreds of fields) by reflection the first time, most
	// of a millisecond: on another core while the image is resolved.
	go json.Marshal(&container.Container{})
	_, rec, icfg, err := e.resolveImage(ctx, opts.Image)
	if err != nil {
		return nil, err
	}
	if err := validateHostConfig(&opts.HostConfig); err != nil {
		return nil, err
	}
	c = &container.Container{
		ID:         container.NewID(),
		Created:    time.Now().UTC(),
		Image:      rec.ID,
		Config:     opts.Config,
		HostConfig: opts.HostConfig,
		Driver:     e.snaps.Driver(),
		Platform:   "linux",
		State:      container.State{Status: container.StatusCreated},
	}
	c.Berth.ImageName = opts.Image
	cfg := &c.Config
	cfg.Image = opts.Image
	ic := icfg.Config
	cfg.Env = mergeEnv(ic.Env, cfg.Env)
	if !slices.ContainsFunc(cfg.Env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		cfg.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, cfg.Env...)
	}
	if opts.Entrypoint != nil {
		cfg.Entrypoint = nil
		if *opts.Entrypoint != "" {
			cfg.Entrypoint = []string{*opts.Entrypoint}
		}
		cfg.Cmd = opts.Cmd
	} else {
		cfg.Entrypoint = ic.Entrypoint
		cfg.Cmd = opts.Cmd
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = ic.Cmd
		}
	}
	args := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	if len(args) == 0 {
		return nil, errdefs.InvalidArgument("no command specified")
	}
	c.Path, c.Args = args[0], args[1:]
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = ic.WorkingDir
	}
	if cfg.User == "" {
		cfg.User = ic.User
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = ic.StopSignal
	}
	if cfg.Healthcheck == nil {
		cfg.Healthcheck = ic.Healthcheck
	}
	labels := map[string]string{}
	for k, v := range ic.Labels {
		labels[k] = v
	}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	cfg.Labels = labels
	for p := range ic.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	for v := range ic.Volumes {
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		cfg.Volumes[v] = struct{}{}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = c.ID[:12]
	}
	cfg.OnBuild = nil
	if c.HostConfig.NetworkMode == "" {
		c.HostConfig.NetworkMode = "bridge"
	}
	if c.HostConfig.RestartPolicy.Name == "" {
		c.HostConfig.RestartPolicy.Name = "no"
	}
	c.Berth.Publish, c.Berth.Aliases, c.Berth.IP, c.Berth.MAC = opts.Publish, opts.Aliases, opts.IP, opts.MAC
	c.HostConfig.PortBindings = portBindings(opts.Publish)
	if err := e.validateNetwork(ctx, c); err != nil {
		return nil, err
	}
	if err := e.checkMounts(ctx, c); err != nil {
		return nil, err
	}

	name := opts.Name
	if name == "" {
		name = container.RandomName()
		for i := 0; e.containers.NameInUse(name) && i < 20; i++ {
			name = container.RandomName()
		}
	}
	c.Name = "/" + name
	c.Berth.RootfsKey = c.ID
	id := c.ID // c is nil once an error is returned
	chains := image.ChainIDs(rec.DiffIDs)
	parent := chains[len(chains)-1]
	// The writable layer and the record (with the name) are made side by
	// side: each waits on the disk, neither needs the other. What fails
	// undoes the other.
	prepared := make(chan error, 1)
	mounted := false
	go func() {
		mounts, err := e.prepareRoot(ctx, c.ID, parent)
		if err == nil && opts.MountRoot {
			// Not mounted is not an error: the monitor mounts it.
			mounted = e.premountRoot(id, mounts, opts.HostConfig.AutoRemove)
		}
		prepared <- err
	}()
	c.GraphDriver = container.GraphDriver{Name: c.Driver, Data: map[string]string{"UpperDir": e.snaps.UpperDirOf(c.ID)}}
	c.LogPath = filepath.Join(e.containers.Dir(c.ID), c.ID+"-json.log")
	var prep *preparedStart
	if opts.MountRoot {
		prep = e.prepareStart(ctx, *c)
	}
	cerr := e.containers.Create(ctx, c)
	// A name made up here can be taken by another process between the
	// check above and the reservation (twenty runs at once share a space
	// of ~25,000 names): make up another, as Docker does.
	for i := 0; opts.Name == "" && errdefs.IsConflict(cerr) && i < 10; i++ {
		c.Name = "/" + container.RandomName()
		cerr = e.containers.Create(ctx, c)
	}
	if perr := <-prepared; perr != nil {
		prep.abort()
		if cerr == nil {
			e.containers.Delete(context.WithoutCancel(ctx), id)
		}
		return nil, fmt.Errorf("create container: %w", perr)
	}
	if cerr != nil {
		prep.abort()
		if mounted {
			snapshot.Unmount(filepath.Join(e.runDir(id), "rootfs"))
		}
		e.snaps.Remove(context.WithoutCancel(ctx), id)
		return nil, cerr
	}
	if mounted || prep != nil {
		e.mu.Lock()
		if e.runs == nil {
			e.runs = map[string]runStart{}
		}
		e.runs[id] = runStart{mounted: mounted, prep: prep}
		e.mu.Unlock()
	}
	return c, nil
}

// premountRoot mounts the root of the container id in its run directory
// (see CreateOptions.MountRoot) and reports whether it did.
func (e *Engine) premountRoot(id string, mounts []snapshot.Mount, autoRemove bool) bool {
	rootfs := filepath.Join(e.runDir(id), "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return false
	}
	return mountRootWith(mounts, autoRemove, rootfs) == nil
}

// prepareRoot makes the writable layer key of a container of the image
// whose top layer is parent, on the image's init layer (see initLayer).
func (e *Engine) prepareRoot(ctx context.Context, key string, parent digest.Digest) ([]snapshot.Mount, error) {
	base, err := e.initLayer(ctx, parent)
	if err != nil {
		return nil, err
	}
	mounts, err := e.snaps.Prepare(ctx, key, base)
	if errdefs.IsNotFound(err) && base != parent {
		// A collection removed the init layer, unused, since we found
		// it: make it again.
		if base, err = e.initLayer(ctx, parent); err != nil {
			return nil, err
		}
		mounts, err = e.snaps.Prepare(ctx, key, base)
	}
	return mounts, err
}

func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(out, func(o string) bool { o, _, _ = strings.Cut(o, "="); return o == k })
		if i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

func validateHostConfig(hc *container.HostConfig) error {
	switch hc.RestartPolicy.Name {
	case "", "no", "always", "unless-stopped":
		if hc.RestartPolicy.MaximumRetryCount != 0 {
			return errdefs.InvalidArgument("maximum retry count cannot be used with restart policy '%s'", hc.RestartPolicy.Name)
		}
	case "on-failure":
		if hc.RestartPolicy.MaximumRetryCount < 0 {
			return errdefs.InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return errdefs.InvalidArgument("invalid restart policy '%s'", hc.RestartPolicy.Name)
	}
	if hc.AutoRemove && hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != "no" {
		return errdefs.InvalidArgument("conflicting options: cannot specify both --restart and --rm")
	}
	if hc.Memory > 0 && hc.MemorySwap > 0 && hc.MemorySwap < hc.Memory {
		return errdefs.InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if hc.Memory > 0 && hc.Memory < 6<<20 {
		return errdefs.InvalidArgument("Minimum memory limit allowed is 6MB")
	}
	return nil
}

// Container returns the record of the container named by ref (a name, an
// ID or a unique ID prefix), its state reconciled with the processes that
// really exist.
func (e *Engine) Container(ctx context.Context, ref string) (*container.Container, error) {
	id, err := e.containers.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	c, err := e.containers.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.reconcile(ctx, c), nil
}

// reconcile records as exited a container whose process is gone while no
// monitor watches it (the monitor was killed, or the machine rebooted).
// While the monitor that started the process lives, it alone records the
// exit; a monitor started after that one died does not know the container.
func (e *Engine) reconcile(ctx context.Context, c *container.Container) *container.Container {
	if !c.State.Running || procfs.Alive(c.State.Pid, c.Berth.PidStart) || e.watched(c) {
		return c
	}
	updated, err := e.containers.UpdateState(ctx, c.ID, func(c *container.Container) error {
		if !c.State.Running || procfs.Alive(c.State.Pid, c.Berth.PidStart) {
			return errNoChange
		}
		c.State.SetExited(255, false, time.Now().UTC())
		c.State.Error = "the container's monitor was gone when its process exited; exit status unknown"
		return nil
	})
	if err != nil {
		return c
	}
	e.releaseRuntime(ctx, updated)
	return updated
}

// watched reports whether the monitor that started c's process still runs.
func (e *Engine) watched(c *container.Container) bool {
	return procfs.Alive(c.Berth.MonitorPid, c.Berth.MonitorStart)
}

var errNoChange = errors.New("no change")

// ContainerListOptions configure Containers.
type ContainerListOptions struct {
	All     bool
	Latest  bool
	Last    int
	Filters filters.Args // id, name, label, status, exited, ancestor, before, since
}

// Containers lists containers, newest first: the running ones, or all.
func (e *Engine) Containers(ctx context.Context, opts ContainerListOptions) ([]*container.Container, error) {
	list, err := e.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*container.Container
	for _, c := range list {
		c = e.reconcile(ctx, c)
		if !opts.All && !opts.Latest && opts.Last <= 0 && !c.State.Running && !opts.Filters.Has("status") && !opts.Filters.Has("exited") {
			continue
		}
		if !e.matchContainer(ctx, c, opts.Filters) {
			continue
		}
		out = append(out, c)
	}
	if opts.Latest && len(out) > 1 {
		out = out[:1]
	}
	if opts.Last > 0 && len(out) > opts.Last {
		out = out[:opts.Last]
	}
	return out, nil
}

func (e *Engine) matchContainer(ctx context.Context, c *container.Container, f filters.Args) bool {
	for _, v := range f.Get("id") {
		if !strings.HasPrefix(c.ID, v) {
			return false
		}
	}
	if f.Has("name") && !f.Match("name", c.DisplayName()) {
		return false
	}
	if !f.MatchLabels(c.Config.Labels) {
		return false
	}
	if f.Has("status") && !slices.Contains(f.Get("status"), c.State.Status) {
		return false
	}
	for _, v := range f.Get("exited") {
		if c.State.Status != container.StatusExited || fmt.Sprint(c.State.ExitCode) != v {
			return false
		}
	}
	for _, v := range f.Get("ancestor") {
		db, err := e.images.Load(ctx)
		if err != nil {
			return false
		}
		if r, err := db.Resolve(v); err != nil || r.ID != c.Image {
			return false
		}
	}
	return true
}

// RemoveOptions configure RemoveContainer.
type RemoveOptions struct {
	Force, Volumes bool
}

// RemoveContainer removes a container: it must not be running unless
// forced (then it is killed). Everything it holds goes: its process,
// cgroup, mounts, writable layer, record, name, and with Volumes its
// anonymous volumes.
func (e *Engine) RemoveContainer(ctx context.Context, ref string, opts RemoveOptions) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Running {
		if !opts.Force {
			verb := "stop"
			if c.State.Paused {
				verb = "unpause and then stop"
			}
			return errdefs.Conflict("cannot remove container %q: container is %s: %s the container before removing or force remove", c.Name, c.State.Status, verb)
		}
		if err := e.killAndWait(ctx, c); err != nil {
			return err
		}
		if err := e.removeStopped(ctx, c.ID, opts.Volumes); err != nil && !(c.HostConfig.AutoRemove && errdefs.IsNotFound(err)) {
			return err
		}
		return nil // an --rm container's monitor may have removed it already
	}
	return e.removeStopped(ctx, c.ID, opts.Volumes)
}

// removeStopped releases a stopped container's resources and its record.
// Racing removers (a user's rm -f and the monitor's --rm) agree through the
// "removing" status: the first one to set it does the work, the second
// finds it done.
func (e *Engine) removeStopped(ctx context.Context, id string, withVolumes bool) error {
	c, err := e.containers.UpdateState(ctx, id, func(c *container.Container) error {
		if c.State.Status == container.StatusRemoving {
			return errdefs.Conflict("removal of container %s is already in progress", c.ID[:12])
		}
		if c.State.Running {
			return errdefs.Conflict("cannot remove container %q: container is running", c.Name)
		}
		c.State.Status = container.StatusRemoving
		return nil
	})
	if err != nil {
		return err
	}
	e.releaseRuntime(ctx, c)
	purge, err := e.removeReleased(ctx, c, withVolumes)
	return errors.Join(err, purge())
}

// removeReleased removes what a container marked as removing keeps once
// nothing of it runs or is mounted: its writable layer, its run directory,
// with volumes its anonymous volumes (side by side), and last its record
// and name, so that a crash before the end leaves a record to remove again.
// The container is gone when it returns; purge deletes the files of its
// writable layer and record, moved aside meanwhile (the monitor does that
// after it has answered the client waiting for the removal).
func (e *Engine) removeReleased(ctx context.Context, c *container.Container, withVolumes bool) (purge func() error, err error) {
	var wg sync.WaitGroup
	var snapErr error
	purgeSnap := func() error { return nil }
	wg.Go(func() {
		p, err := e.snaps.Discard(ctx, c.Berth.RootfsKey)
		if err != nil && !errdefs.IsNotFound(err) {
			snapErr = err
		}
		if err == nil {
			purgeSnap = p
		}
	})
	wg.Go(func() { os.RemoveAll(e.runDir(c.ID)) })
	// The networks it was connected to while stopped (network connect)
	// forget it.
	wg.Go(func() {
		if nm, err := e.networkManager(); err == nil {
			if err := nm.ForgetConnections(ctx, c.ID); err != nil {
				slog.Warn("forget network connections", "container", c.ID, "err", err)
			}
		}
	})
	if withVolumes {
		for _, m := range c.Mounts {
			if m.Type == "volume" {
				if v, err := e.volumes.Get(ctx, m.Name); err == nil && v.Anonymous {
					e.volumes.Remove(ctx, m.Name)
				}
			}
		}
	}
	wg.Wait()
	purgeRecord, err := e.containers.Discard(ctx, c.ID)
	if err != nil {
		purgeRecord = func() error { return nil }
	}
	return func() error { return errors.Join(purgeSnap(), purgeRecord()) }, errors.Join(snapErr, err)
}

// RenameContainer gives a container a new name.
func (e *Engine) RenameContainer(ctx context.Context, ref, name string) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	name = strings.TrimPrefix(name, "/")
	if name == c.DisplayName() {
		return errdefs.InvalidArgument("Renaming a container with the same name as its current name")
	}
	return e.containers.Rename(ctx, c.ID, name)
}

// PruneContainers removes every stopped container that f selects, and
// returns their IDs and the space their writable layers took.
func (e *Engine) PruneContainers(ctx context.Context, f filters.Args) ([]string, int64, error) {
	list, err := e.Containers(ctx, ContainerListOptions{All: true})
	if err != nil {
		return nil, 0, err
	}
	var removed []string
	var reclaimed int64
	for _, c := range list {
		if c.State.Running || !e.matchContainer(ctx, c, f) {
			continue
		}
		size := int64(0)
		if upper, err := e.snaps.UpperDir(ctx, c.Berth.RootfsKey); err == nil {
			size = dirSize(upper)
		}
		if err := e.removeStopped(ctx, c.ID, false); err == nil {
			removed = append(removed, c.ID)
			reclaimed += size
		}
	}
	return removed, reclaimed, nil
}

// runDir holds a container's state that does not survive a reboot: its
// bundle and its mounted root file system.
func (e *Engine) runDir(id string) string { return filepath.Join(e.runRoot, "containers", id) }

func (e *Engine) runtimeRoot() string { return filepath.Join(e.runRoot, "runtime") }
