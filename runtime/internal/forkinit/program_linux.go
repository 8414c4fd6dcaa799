package forkinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/runtime/internal/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Supported reports whether the fast path can run the container that c
// describes; when not, the runtime re-executes itself as initproc.
func Supported(c *initproc.Config) bool {
	s := c.Spec
	if c.Mode != initproc.ModeCreate || !c.OwnMountNS || c.MountNSFD >= 0 || c.Process.Terminal {
		return false
	}
	if s.Hooks != nil && (len(s.Hooks.CreateContainer) > 0 || len(s.Hooks.StartContainer) > 0) {
		return false
	}
	if s.Linux == nil {
		return false
	}
	newPID := false
	for _, n := range s.Linux.Namespaces {
		switch {
		case n.Type == specs.UserNamespace:
			return false
		case n.Type == specs.PIDNamespace && n.Path == "":
			newPID = true
		}
	}
	// Until it execs, the forked init runs the runtime's binary with every
	// capability: no process of a container may see it then (and open
	// /proc/<pid>/exe to overwrite the binary, CVE-2019-5736). In a new PID
	// namespace it is alone, and Exec waits for the container to run.
	return newPID
}

// Program is a container init compiled to system calls.
type Program struct {
	ops   []op
	descs []string // what each op does, for errors
	keep  []any    // what the ops point into
	s     *scratch
	nfds  int     // descriptors Start is given (the child's 0..nfds-1)
	sync  uintptr // the sync socket's number in the child
	// cgroupNS: the child makes its cgroup namespace once it has joined
	// its cgroup (so that the namespace's root is that cgroup), not at
	// clone.
	cgroupNS bool
	// oomScoreAdj: the child sets its oom_score_adj, which the kernel sets
	// on every process sharing its memory too: such a child is forked.
	oomScoreAdj bool
	// started: a program starts one child (it writes into the program).
	started bool
	// args and pidfd: clone3's arguments and where it writes the pidfd,
	// on the heap (not on a goroutine stack that may move after their
	// addresses are taken).
	args  cloneArgs
	pidfd int32
	// shared: the child shares this process's memory (see doc.go).
	shared bool
}

// Slots: descriptor numbers the child keeps its working fds at, above the
// ones it was given and the lease pipe's (see lease).
const (
	slotRoot = iota
	slotT
	slotP1
	slotP2
	slotOld
	slotDev
	slotT2
	nslots
)

type builder struct {
	p       *Program
	base    uintptr
	how     uintptr
	last    uint64   // cap_last_cap
	join    []string // cgroup files to write 0 to, once the parent says go
	joined  bool
	strs    []byte          // the current block of str's copies
	fdPaths [nslots]uintptr // /proc/self/fd/N of each slot, once made
}

// joinCgroup waits for the parent's go-ahead and moves the child into its
// cgroup.
func (b *builder) joinCgroup() {
	if b.joined || len(b.join) == 0 {
		return
	}
	b.joined = true
	b.add("wait for the cgroup", op{kind: kGo})
	for _, f := range b.join {
		b.writeFile("join cgroup "+path.Dir(f), f, "0")
	}
	if b.p.cgroupNS {
		b.sys("make the cgroup namespace", unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP)
	}
}

func (b *builder) slot(n int) uintptr { return b.base + uintptr(n) }

func (b *builder) fdPath(n int) uintptr {
	if b.fdPaths[n] == 0 {
		b.fdPaths[n] = b.str("/proc/self/fd/" + strconv.Itoa(int(b.slot(n))))
	}
	return b.fdPaths[n]
}

// str returns a NUL-terminated copy of s that the program keeps. The
// copies share blocks of memory: a program holds a few hundred strings.
func (b *builder) str(s string) uintptr {
	if len(s)+1 > cap(b.strs)-len(b.strs) {
		n := max(4096, len(s)+1)
		b.strs = make([]byte, 0, n)
		b.p.keep = append(b.p.keep, b.strs)
	}
	i := len(b.strs)
	b.strs = append(append(b.strs, s...), 0)
	return ptr(&b.strs[i])
}

func (b *builder) add(desc string, o op) int {
	b.p.ops = append(b.p.ops, o)
	b.p.descs = append(b.p.descs, desc)
	return len(b.p.ops) - 1
}

func (b *builder) sys(desc string, nr uintptr, args ...uintptr) *op {
	o := op{kind: kSys, nr: nr}
	copy(o.a[:], args)
	i := b.add(desc, o)
	return &b.p.ops[i]
}

func (b *builder) mount(desc string, src, target uintptr, fstype string, flags uintptr, data string) *op {
	var ft, d uintptr
	if fstype != "" {
		ft = b.str(fstype)
	}
	if data != "" {
		d = b.str(data)
	}
	return b.sys(desc, unix.SYS_MOUNT, src, target, ft, flags, d)
}

// openIn opens dest inside the root into slot, creating what is missing of
// it (directories, and an empty file at the end if file is set).
func (b *builder) openIn(dest string, file bool, slot int) {
	dest = path.Clean("/" + dest)
	parts := strings.Split(strings.TrimPrefix(dest, "/"), "/")
	if dest == "/" {
		parts = nil
	}
	first := b.sys("open "+dest+" in the root", unix.SYS_OPENAT2, b.slot(slotRoot), b.str(dest), b.how, 24)
	first.slot = b.slot(slot)
	first.ok = [2]uintptr{uintptr(unix.ENOENT)}
	first.skipOK = uintptr(len(parts))
	parent := slotRoot
	cur := ""
	for i, name := range parts {
		cur += "/" + name
		res := slotP1
		if parent == slotP1 {
			res = slotP2
		}
		last := i == len(parts)-1
		if last {
			res = slot
		}
		isFile := uintptr(0)
		if last && file {
			isFile = 1
		}
		o := op{kind: kOpenMkdir, slot: b.slot(res)}
		o.a = [6]uintptr{b.slot(slotRoot), b.str(cur), b.how, b.slot(parent), b.str(name), isFile}
		b.add("create "+cur+" in the root", o)
		parent = res
	}
}

// remount remounts what is on target (a path the child resolves afresh)
// with flags.
func (b *builder) remount(desc string, target uintptr, flags uintptr) {
	o := op{kind: kRemount}
	locked := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	o.a = [6]uintptr{target, flags &^ unix.MS_REMOUNT, locked, b.str("")}
	b.add(desc, o)
}

// Build compiles the init that c describes. files is how many
// descriptors the child gets (stdio, then the rest in order); syncFD is
// where the sync socket is among them.
//
// With join set (cgroup v1), the child is not born in its cgroup: it
// starts on the root while the parent makes the cgroup, then waits for the
// parent's go-ahead (see Go) and moves itself in by writing "0" to each of
// the join files — before its cgroup mounts (which it makes last when it
// can, so as to wait as little as possible) and before anything of the
// container runs. A new cgroup namespace is then made after the move (not
// at clone), so that its root is the container's cgroup.
func Build(c *initproc.Config, files, syncFD int, join []string) (*Program, error) {
	p := &Program{s: &scratch{}, nfds: files, sync: uintptr(syncFD), ops: make([]op, 0, 256), descs: make([]string, 0, 256)}
	b := &builder{p: p, base: uintptr(files) + 1, join: join}
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	p.keep = append(p.keep, how)
	b.how = ptr(how)
	b.last = lastCap()
	spec := c.Spec
	if len(join) > 0 && spec.Linux != nil {
		for _, n := range spec.Linux.Namespaces {
			if n.Type == specs.CgroupNamespace && n.Path == "" {
				p.cgroupNS = true
			}
		}
	}

	// The descriptors it is given, moved in place (Start fills in where
	// from), and after them the lease pipe's write end (closed on exec
	// with the sync socket); then nothing else of the runtime's stays open
	// in the child.
	for i := 0; i < files; i++ {
		b.sys(fmt.Sprintf("move descriptor %d", i), unix.SYS_DUP3, 0, uintptr(i), 0)
	}
	b.sys("move the lease pipe", unix.SYS_DUP3, 0, uintptr(files), 0)
	b.sys("close inherited descriptors", unix.SYS_CLOSE_RANGE, uintptr(files)+1, ^uintptr(0), 0)

	if spec.Hostname != "" {
		b.sys("set hostname", unix.SYS_SETHOSTNAME, b.str(spec.Hostname), uintptr(len(spec.Hostname)))
	}
	if spec.Domainname != "" {
		b.sys("set domainname", unix.SYS_SETDOMAINNAME, b.str(spec.Domainname), uintptr(len(spec.Domainname)))
	}
	if err := b.prepareRoot(c); err != nil {
		return nil, err
	}
	if c.SyncCreateRuntime {
		b.add("run createRuntime hooks", op{kind: kHooks})
	}
	b.enterRoot(c)
	if spec.Linux != nil {
		keys := make([]string, 0, len(spec.Linux.Sysctl))
		for k := range spec.Linux.Sysctl {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.writeFile("set sysctl "+k, "/proc/sys/"+strings.ReplaceAll(k, ".", "/"), spec.Linux.Sysctl[k])
		}
		for _, m := range spec.Linux.MaskedPaths {
			o := op{kind: kMask, ok: [2]uintptr{uintptr(unix.ENOENT)}}
			o.a = [6]uintptr{b.str(m), b.str("/dev/null"), b.str("tmpfs"), b.str("size=0")}
			b.add("mask "+m, o)
		}
		for _, r := range spec.Linux.ReadonlyPaths {
			pr := b.str(r)
			o := b.sys("make "+r+" read-only", unix.SYS_MOUNT, pr, pr, 0, unix.MS_BIND|unix.MS_REC, 0)
			o.ok = [2]uintptr{uintptr(unix.ENOENT)}
			o.skipEr = 1
			b.remount("make "+r+" read-only", pr, unix.MS_RDONLY)
		}
	}
	if spec.Root != nil && spec.Root.Readonly {
		b.remount("make the root read-only", b.str("/"), unix.MS_RDONLY)
	}
	return p, b.process(c)
}

var propagation = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

func (b *builder) prepareRoot(c *initproc.Config) error {
	spec := c.Spec
	if c.RootFD > 0 {
		// A root mounted where this namespace was not copied from (see
		// runtime.MountTemplate): attached first, where it is expected.
		b.sys("attach the root", unix.SYS_MOVE_MOUNT, uintptr(c.RootFD), b.str(""), atFDCWD, b.str(c.Rootfs), unix.MOVE_MOUNT_F_EMPTY_PATH)
	}
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if spec.Linux != nil && spec.Linux.RootfsPropagation != "" {
		f, ok := propagation[spec.Linux.RootfsPropagation]
		if !ok {
			return fmt.Errorf("unknown rootfsPropagation %q", spec.Linux.RootfsPropagation)
		}
		if f&unix.MS_UNBINDABLE == 0 {
			prop = f
		}
	}
	b.mount("set root propagation", b.str(""), b.str("/"), "", prop, "")
	if prop&unix.MS_SHARED != 0 {
		mp, err := mountPointOf(c.Rootfs)
		if err != nil {
			return err
		}
		b.mount("make the rootfs mount private", b.str(""), b.str(mp), "", unix.MS_PRIVATE, "")
	}
	rootfs := b.str(c.Rootfs)
	b.mount("bind rootfs", rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, "")
	o := b.sys("open rootfs", unix.SYS_OPENAT, atFDCWD, rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	o.slot = b.slot(slotRoot)

	bindDev := false
	for _, m := range spec.Mounts {
		if path.Clean(m.Destination) == "/dev" && isBind(m) {
			bindDev = true
		}
	}
	// The cgroup mounts need the cgroup, which the parent makes while the
	// child mounts (see Build): where no other mount and no device node
	// lands in or above one of them, they come last, after the devices, so
	// that the child has done all it can before it waits.
	late := len(b.join) > 0 && cgroupMountsLast(spec.Mounts, !bindDev)
	var deferred []specs.Mount
	for _, m := range spec.Mounts {
		if m.Type == "cgroup" {
			if late {
				deferred = append(deferred, m)
				continue
			}
			b.joinCgroup()
		}
		if err := b.mountOne(c, m); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
		}
	}
	if !late {
		b.joinCgroup()
	}
	if !bindDev {
		if err := b.devices(spec); err != nil {
			return err
		}
	}
	b.joinCgroup()
	for _, m := range deferred {
		if err := b.mountOne(c, m); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
		}
	}
	return nil
}

// cgroupMountsLast reports whether the cgroup mounts may move after every
// other mount (and after the device nodes in /dev, with devices set): no
// mount after one of them lands in it or above it, and it is not in /dev.
func cgroupMountsLast(mounts []specs.Mount, devices bool) bool {
	related := func(a, b string) bool {
		a, b = path.Clean("/"+a), path.Clean("/"+b)
		return a == b || a == "/" || b == "/" || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
	}
	for i, m := range mounts {
		if m.Type != "cgroup" {
			continue
		}
		if devices && related(m.Destination, "/dev") {
			return false
		}
		for _, later := range mounts[i+1:] {
			if later.Type != "cgroup" && related(m.Destination, later.Destination) {
				return false
			}
		}
	}
	return true
}

func isBind(m specs.Mount) bool {
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

func (b *builder) mountOne(c *initproc.Config, m specs.Mount) error {
	o := initproc.ParseMountOptions(m.Options)
	bind := o.Bind || m.Type == "bind"
	desc := fmt.Sprintf("mount %s on %s", m.Source, m.Destination)
	if m.Type == "cgroup" {
		return b.mountCgroup(c, m, o.Flags)
	}
	isFile := false
	if bind {
		st, err := os.Stat(m.Source)
		if err != nil {
			return err
		}
		isFile = !st.IsDir()
	}
	b.openIn(m.Destination, isFile, slotT)
	target := b.fdPath(slotT)
	if bind {
		flags := uintptr(unix.MS_BIND)
		if o.Rec {
			flags |= unix.MS_REC
		}
		b.mount(desc, b.str(m.Source), target, "", flags, "")
		if o.Flags&^unix.MS_REMOUNT != 0 || o.Clear != 0 {
			b.openIn(m.Destination, false, slotT2)
			b.remount(desc, b.fdPath(slotT2), o.Flags)
		}
	} else {
		b.mount(desc, b.str(m.Source), target, m.Type, o.Flags, strings.Join(o.Data, ","))
	}
	if o.Prop != 0 {
		b.openIn(m.Destination, false, slotT2)
		b.mount(desc+": propagation", b.str(""), b.fdPath(slotT2), "", o.Prop, "")
	}
	return nil
}

func (b *builder) mountCgroup(c *initproc.Config, m specs.Mount, flags uintptr) error {
	cg := c.Cgroup
	desc := "mount cgroup on " + m.Destination
	b.openIn(m.Destination, false, slotT)
	if cg.V2 {
		// With a cgroup namespace of its own, the container sees its cgroup
		// as the root of a cgroup2 mount; without, bind its directory.
		o := b.mount(desc, b.str("cgroup2"), b.fdPath(slotT), "cgroup2", flags, "")
		o.skipOK = 3
		o.ok = [2]uintptr{uintptr(unix.EPERM), uintptr(unix.EBUSY)}
		b.mount(desc, b.str(cg.Paths[""]), b.fdPath(slotT), "", unix.MS_BIND, "")
		b.openIn(m.Destination, false, slotT2)
		b.remount(desc, b.fdPath(slotT2), flags)
		return nil
	}
	b.mount(desc, b.str("tmpfs"), b.fdPath(slotT), "tmpfs", flags&^unix.MS_RDONLY, "mode=755")
	names := make([]string, 0, len(cg.Paths))
	for name := range cg.Paths {
		if name != "" && !strings.ContainsRune(name, '/') {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	// The tmpfs is new and empty: each hierarchy's directory is made in
	// it, and its group bound there, from the tmpfs's root (no walk from
	// the rootfs's for each one).
	b.openIn(m.Destination, false, slotT2)
	bind := flags | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	set, clr := mountAttrs(bind)
	dir := b.slot(slotT2)
	for _, name := range names {
		o := op{kind: kBindTree}
		o.a = [6]uintptr{b.str(cg.Paths[name]), dir, b.str(name), uintptr(set | clr<<32), bind, b.str("/proc/self/fd/" + strconv.Itoa(int(dir)) + "/" + name)}
		b.add("bind cgroup "+name, o)
	}
	if flags&unix.MS_RDONLY != 0 {
		b.openIn(m.Destination, false, slotT2)
		b.remount(desc, b.fdPath(slotT2), flags)
	}
	return nil
}

func (b *builder) devices(spec *specs.Spec) error {
	devs, err := initproc.Devices(spec)
	if err != nil {
		return err
	}
	b.openIn("/dev", false, slotDev)
	for _, d := range devs {
		dir, name := path.Split(path.Clean("/" + d.Path))
		dirSlot := slotDev
		if path.Clean(dir) != "/dev" {
			b.openIn(dir, false, slotP1)
			dirSlot = slotP1
		}
		pname := b.str(name)
		u := b.sys("remove "+d.Path, unix.SYS_UNLINKAT, b.slot(dirSlot), pname, 0)
		u.ok = [2]uintptr{uintptr(unix.ENOENT)}
		o := op{kind: kMknod, slot: b.slot(slotT2)}
		o.a = [6]uintptr{b.slot(dirSlot), pname, uintptr(d.Type | d.Mode), uintptr(unix.Mkdev(uint32(d.Major), uint32(d.Minor))), b.str(d.Path), b.fdPath(slotT2)}
		b.add("create device "+d.Path, o)
		// mknod applies the umask; a bound host node keeps its mode.
		c := b.sys("chmod "+d.Path, unix.SYS_FCHMODAT, b.slot(dirSlot), pname, uintptr(d.Mode))
		c.ok = [2]uintptr{uintptr(unix.EROFS), uintptr(unix.EPERM)}
		if d.UID >= 0 || d.GID >= 0 {
			b.sys("chown "+d.Path, unix.SYS_FCHOWNAT, b.slot(dirSlot), pname, uintptr(d.UID), uintptr(d.GID), unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		name := b.str(l[1])
		if l[1] == "ptmx" {
			u := b.sys("remove /dev/ptmx", unix.SYS_UNLINKAT, b.slot(slotDev), name, 0)
			u.ok = [2]uintptr{uintptr(unix.ENOENT)}
		}
		o := b.sys("link /dev/"+l[1], unix.SYS_SYMLINKAT, b.str(l[0]), b.slot(slotDev), name)
		o.ok = [2]uintptr{uintptr(unix.EEXIST)}
	}
	return nil
}

// mountAttrs turns mount flags into mount_setattr's attributes to set and
// to clear: the flags the kernel would set on a bind remount with flags.
func mountAttrs(flags uintptr) (set, clr uint64) {
	for _, f := range [][2]uint64{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV}, {unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	} {
		if uint64(flags)&f[0] != 0 {
			set |= f[1]
		} else {
			clr |= f[1]
		}
	}
	// relatime unless noatime or strictatime, as mount(2) does.
	clr |= unix.MOUNT_ATTR__ATIME
	switch {
	case flags&unix.MS_NOATIME != 0:
		set |= unix.MOUNT_ATTR_NOATIME
	case flags&unix.MS_STRICTATIME != 0:
		set |= unix.MOUNT_ATTR_STRICTATIME
	default:
		set |= unix.MOUNT_ATTR_RELATIME
	}
	return set, clr
}

// enterRoot: see initproc's enterRoot for the pivot_root(".", ".") trick.
func (b *builder) enterRoot(c *initproc.Config) {
	rootfs := b.str(c.Rootfs)
	slash := b.str("/")
	if c.NoPivot {
		b.sys("chdir to rootfs", unix.SYS_CHDIR, rootfs)
		b.mount("move root", rootfs, slash, "", unix.MS_MOVE, "")
		b.sys("chroot", unix.SYS_CHROOT, b.str("."))
		b.sys("chdir /", unix.SYS_CHDIR, slash)
		return
	}
	o := b.sys("open old root", unix.SYS_OPENAT, atFDCWD, slash, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC)
	o.slot = b.slot(slotOld)
	b.sys("chdir to rootfs", unix.SYS_CHDIR, rootfs)
	dot := b.str(".")
	b.sys("pivot_root", unix.SYS_PIVOT_ROOT, dot, dot)
	b.sys("chdir to old root", unix.SYS_FCHDIR, b.slot(slotOld))
	b.mount("make old root slave", b.str(""), dot, "", unix.MS_SLAVE|unix.MS_REC, "")
	b.sys("unmount old root", unix.SYS_UMOUNT2, dot, unix.MNT_DETACH)
	b.sys("chdir /", unix.SYS_CHDIR, slash)
	if l := c.Spec.Linux; l != nil && l.RootfsPropagation != "" {
		b.mount("set rootfs propagation", b.str(""), slash, "", propagation[l.RootfsPropagation], "")
	}
}

func (b *builder) writeFile(desc, name, value string) {
	buf := []byte(value)
	b.p.keep = append(b.p.keep, buf)
	var p uintptr
	if len(buf) > 0 {
		p = ptr(&buf[0])
	}
	b.add(desc, op{kind: kWriteFile, a: [6]uintptr{b.str(name), p, uintptr(len(buf))}})
}

// process sets up the process itself: cwd, rlimits, oom score, the
// executable; then waits for start and drops into the process's identity.
func (b *builder) process(c *initproc.Config) error {
	p := c.Process
	if p.Cwd != "" {
		b.sys("chdir to cwd "+p.Cwd, unix.SYS_CHDIR, b.str(p.Cwd))
	}
	for _, r := range p.Rlimits {
		n, ok := initproc.RlimitNumber(r.Type)
		if !ok {
			return fmt.Errorf("unknown rlimit %q", r.Type)
		}
		lim := &unix.Rlimit{Cur: r.Soft, Max: r.Hard}
		b.p.keep = append(b.p.keep, lim)
		b.sys(fmt.Sprintf("set %s to %d:%d", r.Type, r.Soft, r.Hard), unix.SYS_PRLIMIT64, 0, uintptr(n), ptr(lim), 0)
	}
	if p.OOMScoreAdj != nil {
		b.p.oomScoreAdj = true
		b.writeFile("set oom_score_adj", "/proc/self/oom_score_adj", fmt.Sprint(*p.OOMScoreAdj))
	}
	if len(p.Args) == 0 {
		return errors.New("process.args is empty")
	}
	for _, cand := range initproc.Candidates(p.Args[0], p.Env) {
		b.p.s.cands = append(b.p.s.cands, b.str(cand))
	}
	b.add(fmt.Sprintf("exec: %q", p.Args[0]), op{kind: kLook})
	b.add("report ready", op{kind: kReport})
	waitFD := b.p.sync
	if c.FifoFD >= 0 {
		waitFD = uintptr(c.FifoFD)
	}
	b.add("wait for start", op{kind: kWait, a: [6]uintptr{waitFD}})
	// From here on, only what the process is allowed.
	b.sys("close descriptors", unix.SYS_CLOSE_RANGE, uintptr(3+c.PreserveFDs), ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC)
	umask := uintptr(0o022)
	if p.User.Umask != nil {
		umask = uintptr(*p.User.Umask)
	}
	b.sys("set umask", unix.SYS_UMASK, umask)
	var fprog *unix.SockFprog
	if len(c.Seccomp) > 0 {
		if len(c.Seccomp)%8 != 0 {
			return errors.New("seccomp program length is not a multiple of 8")
		}
		insns := make([]unix.SockFilter, len(c.Seccomp)/8)
		for i := range insns {
			r := c.Seccomp[8*i:]
			insns[i] = unix.SockFilter{Code: uint16(r[0]) | uint16(r[1])<<8, Jt: r[2], Jf: r[3], K: uint32(r[4]) | uint32(r[5])<<8 | uint32(r[6])<<16 | uint32(r[7])<<24}
		}
		fprog = &unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
		b.p.keep = append(b.p.keep, fprog, insns)
		if !p.NoNewPrivileges {
			// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN,
			// which the process may be about to lose.
			b.sys("load seccomp filter", unix.SYS_SECCOMP, 1, uintptr(c.SeccompFlags), ptr(fprog))
		}
	}
	b.identity(p)
	if p.NoNewPrivileges {
		b.sys("set no_new_privs", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
		if fprog != nil {
			b.sys("load seccomp filter", unix.SYS_SECCOMP, 1, uintptr(c.SeccompFlags), ptr(fprog))
		}
	}
	argv, err := syscall.SlicePtrFromStrings(p.Args)
	if err != nil {
		return err
	}
	env, err := syscall.SlicePtrFromStrings(p.Env)
	if err != nil {
		return err
	}
	argv, env = append(argv, nil), append(env, nil)
	b.p.keep = append(b.p.keep, argv, env)
	b.add("restore signal mask", op{kind: kSys, nr: unix.SYS_RT_SIGPROCMASK, a: [6]uintptr{unix.SIG_SETMASK, ptr(&b.p.s.sigmask), 0, 8}})
	b.add(fmt.Sprintf("exec %q", p.Args[0]), op{kind: kExec, a: [6]uintptr{ptr(&argv[0]), ptr(&env[0])}})
	return nil
}

// identity: per-thread credential calls, as in initproc.setIdentity.
func (b *builder) identity(p *specs.Process) {
	caps := p.Capabilities
	last := b.last
	mask := func(names []string) uint64 {
		var m uint64
		for _, n := range names {
			if c, ok := initproc.CapNumber(n); ok && uint64(c) <= last {
				m |= 1 << c
			}
		}
		return m
	}
	if caps != nil {
		if drop := ^mask(caps.Bounding) & (1<<(last+1) - 1); drop != 0 {
			b.add("drop bounding capabilities", op{kind: kDropBounding, a: [6]uintptr{uintptr(drop), uintptr(last)}})
		}
	}
	b.sys("set keepcaps", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1)
	gids := append([]uint32(nil), p.User.AdditionalGids...)
	var gp uintptr
	if len(gids) > 0 {
		b.p.keep = append(b.p.keep, gids)
		gp = ptr(&gids[0])
	}
	b.sys("setgroups", unix.SYS_SETGROUPS, uintptr(len(gids)), gp)
	g, u := uintptr(p.User.GID), uintptr(p.User.UID)
	b.sys(fmt.Sprintf("setgid %d", g), unix.SYS_SETRESGID, g, g, g)
	b.sys(fmt.Sprintf("setuid %d", u), unix.SYS_SETRESUID, u, u, u)
	b.sys("clear keepcaps", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0)
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := &[2]unix.CapUserData{}
	b.p.keep = append(b.p.keep, hdr, data)
	if caps == nil {
		if p.User.UID != 0 {
			b.sys("apply capabilities", unix.SYS_CAPSET, ptr(hdr), ptr(&data[0]))
		}
		return
	}
	eff, perm, inh := mask(caps.Effective), mask(caps.Permitted), mask(caps.Inheritable)
	data[0] = unix.CapUserData{Effective: uint32(eff), Permitted: uint32(perm), Inheritable: uint32(inh)}
	data[1] = unix.CapUserData{Effective: uint32(eff >> 32), Permitted: uint32(perm >> 32), Inheritable: uint32(inh >> 32)}
	b.sys("apply capabilities", unix.SYS_CAPSET, ptr(hdr), ptr(&data[0]))
	o := b.sys("clear ambient capabilities", unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL)
	o.ok = [2]uintptr{uintptr(unix.EINVAL)}
	amb := mask(caps.Ambient) & perm & inh
	for c := uint64(0); c <= last; c++ {
		if amb&(1<<c) != 0 {
			b.sys(fmt.Sprintf("raise ambient capability %d", c), unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c))
		}
	}
}

func lastCap() uint64 {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		var n uint64
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &n); err == nil {
			return n
		}
	}
	return 40
}

// mountPointOf returns the mount point that holds dir.
func mountPointOf(dir string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	best := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if (mp == "/" || dir == mp || strings.HasPrefix(dir, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return "", errors.New("no mount holds " + dir)
	}
	return best, nil
}

// Message is what the child said on the sync socket.
type Message struct {
	Ready bool // waiting for start
	Hooks bool // asks for the createRuntime hooks; answer with Answer
	Err   error
	Code  int // exit status for Err
}

// ReadMessage reads the child's next message from the sync socket r; io.EOF
// means the child exec'd (or died without a word).
func (p *Program) ReadMessage(r io.Reader) (Message, error) {
	var buf [16]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return Message{}, err
	}
	idx := binary.NativeEndian.Uint32(buf[0:])
	errno := unix.Errno(binary.NativeEndian.Uint32(buf[4:]))
	code := int(binary.NativeEndian.Uint32(buf[8:]))
	switch idx {
	case msgReady:
		return Message{Ready: true}, nil
	case msgHooks:
		return Message{Hooks: true}, nil
	}
	desc := "container init"
	if int(idx) < len(p.descs) {
		desc = p.descs[idx]
	}
	if p.ops[idx].kind == kLook {
		switch errno {
		case unix.ENOENT:
			return Message{Err: fmt.Errorf("%s: executable file not found", desc), Code: code}, nil
		default:
			return Message{Err: fmt.Errorf("%s: permission denied", desc), Code: code}, nil
		}
	}
	return Message{Err: fmt.Errorf("%s: %w", desc, errno), Code: code}, nil
}

// Go tells a child built with join files that its cgroup is made (ok), or
// to give up. Answer tells a child waiting on hooks the same way.
func Go(w io.Writer, ok bool) error { return Answer(w, ok) }

// Answer tells a child waiting on hooks to go on (ok) or give up.
func Answer(w io.Writer, ok bool) error {
	b := []byte{0}
	if !ok {
		b[0] = 1
	}
	_, err := w.Write(b)
	return err
}
