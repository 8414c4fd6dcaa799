// Package cgroups owns a container's control group: it turns the OCI
// spec's linux.resources into settings of github.com/opencontainers/cgroups,
// creates and joins the group on cgroup v1 and v2, and reads it back
// (statistics, OOM kills, processes, freezer state) until it is removed.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // device rules on v1 and v2
	devices "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config is what identifies a container's cgroup on disk; it is saved in the
// container's state so that later commands find the same group.
type Config struct {
	// Path is the cgroup path relative to the hierarchy roots.
	Path string `json:"path"`
	// V2 is set on a unified (cgroup v2 only) host.
	V2 bool `json:"v2,omitempty"`
	// Paths maps v1 controllers (or "" on v2) to their directories.
	Paths map[string]string `json:"paths"`
}

// Group is a container's cgroup.
type Group struct {
	cfg Config
	m   cgroups.Manager
	res *cgroups.Resources // to apply, until Make
}

// ResolvePath turns the spec's cgroupsPath into a path under the hierarchy
// roots: empty means /berth/<id>; a systemd-style "slice:prefix:name" (as
// passed with --systemd-cgroup) is laid out as systemd would, under the
// slice; a relative path is taken from the root.
func ResolvePath(cgroupsPath, id string) string {
	if cgroupsPath == "" {
		return "/berth/" + id
	}
	if parts := strings.Split(cgroupsPath, ":"); len(parts) == 3 && !strings.HasPrefix(cgroupsPath, "/") {
		slice, prefix, name := parts[0], parts[1], parts[2]
		if slice == "" {
			slice = "system.slice"
		}
		scope := name
		if prefix != "" {
			scope = prefix + "-" + name
		}
		if !strings.HasSuffix(scope, ".slice") {
			scope += ".scope"
		}
		return path.Join("/", expandSlice(slice), scope)
	}
	return path.Join("/", cgroupsPath)
}

// expandSlice turns a-b-c.slice into a.slice/a-b.slice/a-b-c.slice.
func expandSlice(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" {
		return ""
	}
	var out []string
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		prefix += part
		out = append(out, prefix+".slice")
		prefix += "-"
	}
	return strings.Join(out, "/")
}

// UnifiedHost reports whether the host has a pure cgroup v2 hierarchy.
func UnifiedHost() bool { return cgroups.IsCgroup2UnifiedMode() }

// Create makes the cgroup at cgPath (from ResolvePath) and applies the
// resources to it. Nothing is left behind when it fails.
func Create(cgPath string, r *specs.LinuxResources) (*Group, error) {
	g, err := New(cgPath, r, nil)
	if err != nil {
		return nil, err
	}
	if err := g.Make(); err != nil {
		return nil, err
	}
	return g, nil
}

// Hierarchies are where the host's v1 hierarchies are mounted, found once
// (they do not move while berth runs) by a process that places many
// groups: New then joins a group's path to each, rather than look for
// every hierarchy again (a path resolved and three system calls each, a
// dozen hierarchies: about 0.3 ms a container). A nil *Hierarchies finds
// nothing, and New looks every time.
type Hierarchies struct {
	once  sync.Once
	bases map[string]string // subsystem -> <root>/<the hierarchy's mount>
}

// probePath is the group path the hierarchies are found with: nothing is
// made there.
const probePath = "/berth-hierarchies-probe"

func (h *Hierarchies) find() map[string]string {
	if h == nil {
		return nil
	}
	h.once.Do(func() {
		if cgroups.IsCgroup2UnifiedMode() {
			return
		}
		c := &cgroups.Cgroup{Path: probePath, Resources: &cgroups.Resources{SkipDevices: true}}
		m, err := fs.NewManager(c, nil)
		if err != nil {
			return
		}
		bases := map[string]string{}
		for name, p := range m.GetPaths() {
			b, ok := strings.CutSuffix(p, probePath)
			if !ok {
				return
			}
			bases[name] = b
		}
		h.bases = bases
	})
	return h.bases
}

// New plans the cgroup at cgPath with the resources, without making it:
// its directories are known (Config, MountPaths, JoinFiles) and Make
// creates it. h, if not nil, knows where the hierarchies are.
func New(cgPath string, r *specs.LinuxResources, h *Hierarchies) (*Group, error) {
	res, err := Resources(r)
	if err != nil {
		return nil, err
	}
	c := &cgroups.Cgroup{Path: cgPath, Resources: res}
	g := &Group{cfg: Config{Path: cgPath, V2: cgroups.IsCgroup2UnifiedMode()}, res: res}
	// On v1 the device rules are written as listed (the library would
	// reorder them; the spec says they apply in order).
	res.SkipDevices = !g.cfg.V2
	if g.cfg.V2 {
		g.m, err = fs2.NewManager(c, filepath.Join("/sys/fs/cgroup", cgPath))
	} else if bases := h.find(); bases != nil && path.IsAbs(cgPath) {
		paths := make(map[string]string, len(bases))
		for name, b := range bases {
			paths[name] = filepath.Join(b, cgPath)
		}
		g.m, err = fs.NewManager(c, paths)
	} else {
		g.m, err = fs.NewManager(c, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", cgPath, err)
	}
	g.cfg.Paths = g.m.GetPaths()
	return g, nil
}

// JoinFiles lists, on v1, the files a single-threaded process writes "0"
// to to move itself into the group without the cost EnterThread explains
// (the hybrid host's cgroup2 hierarchy is left out).
func (g *Group) JoinFiles() []string {
	if g.cfg.V2 {
		return nil
	}
	var out []string
	for _, p := range g.cfg.Paths {
		// The group is not made yet: ask its hierarchy's root.
		root, _ := strings.CutSuffix(p, g.cfg.Path)
		if !isUnified(root) {
			out = append(out, filepath.Join(p, "tasks"))
		}
	}
	sort.Strings(out)
	return out
}

// Make creates the planned group and applies its resources; nothing is
// left when it fails.
func (g *Group) Make() error {
	if err := g.MakeDirs(); err != nil {
		return err
	}
	if err := g.SetResources(); err != nil {
		_ = g.m.Destroy()
		return err
	}
	return nil
}

// MakeDirs creates the planned group, without its resources: processes
// can join it (on v1, its cpuset has CPUs and memory nodes), and
// SetResources applies the rest, device rules included. Nothing is left
// when it fails.
func (g *Group) MakeDirs() error {
	if err := g.m.Apply(-1); err != nil {
		_ = g.m.Destroy()
		return fmt.Errorf("create cgroup %s: %w", g.cfg.Path, err)
	}
	g.cfg.Paths = g.m.GetPaths()
	if d := g.cfg.Paths["devices"]; d != "" && g.res.SkipDevices {
		// The library skips the devices group along with its rules.
		if err := os.MkdirAll(d, 0o755); err != nil {
			_ = g.m.Destroy()
			return fmt.Errorf("create cgroup %s: %w", g.cfg.Path, err)
		}
	}
	return nil
}

// SetResources applies the planned resources to the group MakeDirs made.
// When it fails, the caller destroys the group (with whatever joined it).
func (g *Group) SetResources() error {
	res := g.res
	if err := g.m.Set(res); err != nil {
		return fmt.Errorf("set cgroup %s: %w", g.cfg.Path, err)
	}
	if res.SkipDevices {
		if err := writeDeviceRules(g.cfg.Paths["devices"], res.Devices); err != nil {
			return err
		}
	}
	return nil
}

// writeDeviceRules applies v1 device rules in order, in the devices group
// that MakeDirs made. An allow rule that was written already, with no deny
// of its device since, is left out (the spec's rules and the defaults
// repeat one another); each file is opened once, and each write is one
// rule.
func writeDeviceRules(dir string, rules []*devices.Rule) error {
	if dir == "" {
		return nil
	}
	fds := map[string]int{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	// The allow rules written since the last deny of their device (a deny
	// takes access away from the rule of the very same type and numbers,
	// or from all of them when it is for every device).
	type device struct {
		typ          devices.Type
		major, minor int64
	}
	allowed := map[device]string{}
	for _, r := range rules {
		rule := r.CgroupString()
		dev := device{r.Type, r.Major, r.Minor}
		file := "devices.deny"
		switch {
		case r.Allow && allowed[dev] == rule:
			continue
		case r.Allow:
			allowed[dev] = rule
			file = "devices.allow"
		case r.Type == devices.WildcardDevice:
			clear(allowed)
		default:
			delete(allowed, dev)
		}
		fd, ok := fds[file]
		if !ok {
			var err error
			if fd, err = openRetry(filepath.Join(dir, file)); err != nil {
				return fmt.Errorf("device rule %q: %w", rule, err)
			}
			fds[file] = fd
		}
		if err := writeFDRetry(fd, []byte(rule)); err != nil {
			return fmt.Errorf("device rule %q: %w", rule, err)
		}
	}
	return nil
}

func openRetry(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func writeFDRetry(fd int, b []byte) error {
	for {
		_, err := unix.Write(fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// Load returns the group a Config describes.
func Load(cfg Config) (*Group, error) {
	c := &cgroups.Cgroup{Path: cfg.Path, Resources: &cgroups.Resources{}}
	var err error
	g := &Group{cfg: cfg}
	if cfg.V2 {
		g.m, err = fs2.NewManager(c, cfg.Paths[""])
	} else {
		g.m, err = fs.NewManager(c, cfg.Paths)
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Config returns what Load needs to find this group again.
func (g *Group) Config() Config { return g.cfg }

// V2 reports whether the group is on a unified hierarchy.
func (g *Group) V2() bool { return g.cfg.V2 }

// OpenDir opens the group's directory for clone3's CLONE_INTO_CGROUP (v2
// only).
func (g *Group) OpenDir() (*os.File, error) {
	if !g.cfg.V2 {
		return nil, errors.New("CLONE_INTO_CGROUP needs cgroup v2")
	}
	return os.OpenFile(g.cfg.Paths[""], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// Add moves pid into the group.
func (g *Group) Add(pid int) error {
	if err := g.m.Apply(pid); err != nil {
		return fmt.Errorf("join cgroup: %w", err)
	}
	if d := g.cfg.Paths["devices"]; d != "" && !g.cfg.V2 {
		// The library skips the devices group along with its rules.
		if err := writeRetry(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid))); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}

func writeRetry(path string, b []byte) error {
	for {
		err := os.WriteFile(path, b, 0)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// EnterThread moves the calling OS thread into the group, so that a
// process it forks is born there (cgroup v1; on v2, clone3's
// CLONE_INTO_CGROUP does this). The caller must hold the thread
// (runtime.LockOSThread) until it has called the returned function, which
// moves the thread back where it was.
//
// The trick is to write "0" (the calling thread) to each hierarchy's tasks
// file: the kernel then moves a single thread that cannot exit under it and
// skips the global cgroup_threadgroup_rwsem, whose write side waits for an
// RCU grace period — milliseconds, on every container start, when a pid is
// written to cgroup.procs instead. The hybrid host's cgroup2 hierarchy,
// which has no tasks file and no controllers, is left alone.
func (g *Group) EnterThread() (leave func() error, err error) {
	if g.cfg.V2 {
		return nil, errors.New("moving a thread needs cgroup v1")
	}
	self, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, err
	}
	orig := map[string]string{} // controller (or name=...) → cgroup path
	for _, line := range strings.Split(string(self), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			orig[ctl] = parts[2]
		}
	}
	var back []string
	leave = func() error {
		for _, p := range back {
			if err := writeRetry(filepath.Join(p, "tasks"), []byte("0")); err != nil {
				return fmt.Errorf("leave cgroup: %w", err)
			}
		}
		return nil
	}
	for sub, p := range g.cfg.Paths {
		if isUnified(p) {
			continue
		}
		o, ok := orig[sub]
		mnt, found := strings.CutSuffix(p, g.cfg.Path)
		if !ok || !found {
			_ = leave()
			return nil, fmt.Errorf("cgroup %s: cannot tell where this thread is", p)
		}
		if err := writeRetry(filepath.Join(p, "tasks"), []byte("0")); err != nil {
			_ = leave()
			return nil, fmt.Errorf("join cgroup %s: %w", p, err)
		}
		back = append(back, filepath.Join(mnt, o))
	}
	return leave, nil
}

func isUnified(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Set applies new resources.
func (g *Group) Set(r *specs.LinuxResources) error {
	res, err := Resources(r)
	if err != nil {
		return err
	}
	return g.m.Set(res)
}

// Pids lists every process in the group.
func (g *Group) Pids() ([]int, error) { return g.m.GetAllPids() }

// Freeze freezes (true) or thaws the group.
func (g *Group) Freeze(freeze bool) error {
	st := cgroups.Thawed
	if freeze {
		st = cgroups.Frozen
	}
	return g.m.Freeze(st)
}

// Frozen reports whether the group is frozen.
func (g *Group) Frozen() bool {
	st, err := g.m.GetFreezerState()
	return err == nil && st == cgroups.Frozen
}

// OOMKills returns how many processes the OOM killer killed in the group.
func (g *Group) OOMKills() (uint64, error) { return g.m.OOMKillCount() }

// Stats returns the group's statistics.
func (g *Group) Stats() (*cgroups.Stats, error) { return g.m.GetStats() }

// KillAll sends sig to every process in the group.
func (g *Group) KillAll(sig unix.Signal) error {
	pids, err := g.Pids()
	if err != nil {
		return err
	}
	for _, p := range pids {
		if p == os.Getpid() {
			continue
		}
		if err := unix.Kill(p, sig); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}

// Destroy removes the group; processes still in it are killed first.
func (g *Group) Destroy() error {
	if pids, _ := g.Pids(); len(pids) > 0 && !slices.Contains(pids, os.Getpid()) {
		_ = g.Freeze(true)
		_ = g.KillAll(unix.SIGKILL)
		_ = g.Freeze(false)
	}
	return g.m.Destroy()
}

// Resources converts the spec's resources for opencontainers/cgroups.
func Resources(r *specs.LinuxResources) (*cgroups.Resources, error) {
	res := &cgroups.Resources{}
	if r == nil {
		r = &specs.LinuxResources{}
	}
	for _, d := range r.Devices {
		rule := &devices.Rule{Allow: d.Allow, Permissions: devices.Permissions(d.Access), Major: -1, Minor: -1}
		switch d.Type {
		case "", "a":
			rule.Type = devices.WildcardDevice
		case "c":
			rule.Type = devices.CharDevice
		case "b":
			rule.Type = devices.BlockDevice
		default:
			return nil, fmt.Errorf("device rule: unknown type %q", d.Type)
		}
		if d.Major != nil {
			rule.Major = *d.Major
		}
		if d.Minor != nil {
			rule.Minor = *d.Minor
		}
		if rule.Permissions == "" {
			rule.Permissions = "rwm"
		}
		res.Devices = append(res.Devices, rule)
	}
	// The devices every container gets stay usable (OCI runtime spec,
	// "Default Devices"), and so do the pty's.
	for _, d := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, -1}} {
		res.Devices = append(res.Devices, &devices.Rule{Type: devices.CharDevice, Major: d[0], Minor: d[1], Permissions: "rwm", Allow: true})
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			res.Memory = *m.Limit
		}
		if m.Reservation != nil {
			res.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil {
			res.MemorySwap = *m.Swap
		}
		res.MemorySwappiness = m.Swappiness
		if m.DisableOOMKiller != nil {
			res.OomKillDisable = *m.DisableOOMKiller
		}
		if m.CheckBeforeUpdate != nil {
			res.MemoryCheckBeforeUpdate = *m.CheckBeforeUpdate
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			res.CpuShares = *c.Shares
		}
		if c.Quota != nil {
			res.CpuQuota = *c.Quota
		}
		if c.Period != nil {
			res.CpuPeriod = *c.Period
		}
		res.CpuBurst = c.Burst
		if c.RealtimeRuntime != nil {
			res.CpuRtRuntime = *c.RealtimeRuntime
		}
		if c.RealtimePeriod != nil {
			res.CpuRtPeriod = *c.RealtimePeriod
		}
		res.CpusetCpus = c.Cpus
		res.CpusetMems = c.Mems
		res.CPUIdle = c.Idle
	}
	if p := r.Pids; p != nil {
		if p.Limit != nil {
			l := *p.Limit
			res.PidsLimit = &l
		}
	}
	if b := r.BlockIO; b != nil {
		if b.Weight != nil {
			res.BlkioWeight = *b.Weight
		}
		if b.LeafWeight != nil {
			res.BlkioLeafWeight = *b.LeafWeight
		}
		for _, d := range b.WeightDevice {
			var w, lw uint16
			if d.Weight != nil {
				w = *d.Weight
			}
			if d.LeafWeight != nil {
				lw = *d.LeafWeight
			}
			res.BlkioWeightDevice = append(res.BlkioWeightDevice, cgroups.NewWeightDevice(d.Major, d.Minor, w, lw))
		}
		throttle := func(in []specs.LinuxThrottleDevice) []*cgroups.ThrottleDevice {
			var out []*cgroups.ThrottleDevice
			for _, d := range in {
				out = append(out, cgroups.NewThrottleDevice(d.Major, d.Minor, d.Rate))
			}
			return out
		}
		res.BlkioThrottleReadBpsDevice = throttle(b.ThrottleReadBpsDevice)
		res.BlkioThrottleWriteBpsDevice = throttle(b.ThrottleWriteBpsDevice)
		res.BlkioThrottleReadIOPSDevice = throttle(b.ThrottleReadIOPSDevice)
		res.BlkioThrottleWriteIOPSDevice = throttle(b.ThrottleWriteIOPSDevice)
	}
	for _, h := range r.HugepageLimits {
		res.HugetlbLimit = append(res.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			res.NetClsClassid = *n.ClassID
		}
		for _, p := range n.Priorities {
			res.NetPrioIfpriomap = append(res.NetPrioIfpriomap, &cgroups.IfPrioMap{Interface: p.Name, Priority: int64(p.Priority)})
		}
	}
	if len(r.Unified) > 0 {
		res.Unified = r.Unified
	}
	return res, nil
}

// MountPaths maps each v1 hierarchy's directory name under /sys/fs/cgroup
// to the group's directory in it (or "" to the v2 directory), for the
// container's cgroup mount.
func (g *Group) MountPaths() map[string]string {
	out := map[string]string{}
	for sub, p := range g.cfg.Paths {
		if g.cfg.V2 {
			out[""] = p
			continue
		}
		rel, ok := strings.CutPrefix(p, "/sys/fs/cgroup/")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rel, "/")
		_ = sub
		out[name] = p
	}
	return out
}
