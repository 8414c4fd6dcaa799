package initproc

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Destinations inside the root are resolved with openat2(RESOLVE_IN_ROOT)
// and mounted on through /proc/self/fd/N of the resolved O_PATH descriptor:
// a symlink in the image cannot redirect a mount outside the root, and the
// path cannot be swapped between the check and the mount. The host's /proc
// is still mounted at this point (we are in a copy of the host's mount
// namespace), and "self" there is this process.

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// prepareRoot makes the root a private-to-us mount and mounts everything the
// spec asks for under it.
func (s *session) prepareRoot() error {
	spec := s.c.Spec
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if spec.Linux != nil && spec.Linux.RootfsPropagation != "" {
		f, ok := propagationFlags[spec.Linux.RootfsPropagation]
		if !ok {
			return fmt.Errorf("unknown rootfsPropagation %q", spec.Linux.RootfsPropagation)
		}
		if f&unix.MS_UNBINDABLE == 0 {
			// An unbindable root could not be bound below; it is applied
			// to the new root after the pivot.
			prop = f
		}
	}
	if err := mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set root propagation: %w", err)
	}
	rootfs := s.c.Rootfs
	if prop&unix.MS_SHARED != 0 {
		// pivot_root refuses a shared new root: make the mount the rootfs
		// lives on private, so that its bind below is private too. The
		// asked propagation is applied to the new root after the pivot.
		if err := makeMountPrivate(rootfs); err != nil {
			return fmt.Errorf("make rootfs mount private: %w", err)
		}
	}
	// pivot_root needs the new root to be a mount point.
	if err := mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	rootFD, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer unix.Close(rootFD)
	bindDev := false
	for _, m := range spec.Mounts {
		if path.Clean(m.Destination) == "/dev" && isBind(m) {
			bindDev = true
		}
		if err := s.mountOne(rootFD, m); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
		}
	}
	if !bindDev {
		if err := createDevices(rootFD, spec); err != nil {
			return err
		}
	}
	if s.c.Process.Terminal {
		if err := s.setupConsole(rootFD, true); err != nil {
			return fmt.Errorf("set up console: %w", err)
		}
	}
	return nil
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

// MountOptions is a spec mount's options split into mount(2) arguments.
type MountOptions struct {
	Flags, Clear uintptr // flags to set, and to clear (for remount)
	Prop         uintptr // propagation flags, applied after the mount
	Data         []string
	Bind, Rec    bool
}

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"dirsync": {false, unix.MS_DIRSYNC},
	"mand":    {false, unix.MS_MANDLOCK}, "nomand": {true, unix.MS_MANDLOCK},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"nodiratime": {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"remount": {false, unix.MS_REMOUNT},
	"silent":  {false, unix.MS_SILENT}, "loud": {true, unix.MS_SILENT},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// ParseMountOptions splits a spec mount's options.
func ParseMountOptions(opts []string) MountOptions {
	var o MountOptions
	for _, opt := range opts {
		if f, ok := mountFlags[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
				o.Clear |= f.flag
			} else {
				o.Flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[opt]; ok {
			o.Prop = p
			continue
		}
		switch opt {
		case "bind":
			o.Bind = true
		case "rbind":
			o.Bind, o.Rec = true, true
		case "tmpcopyup", "idmap", "ridmap", "copy-symlink", "notmpcopyup":
			// Not supported; ignored as runc ignores unknown extensions.
		default:
			o.Data = append(o.Data, opt)
		}
	}
	return o
}

func (s *session) mountOne(rootFD int, m specs.Mount) error {
	o := ParseMountOptions(m.Options)
	if m.Type == "bind" {
		o.Bind = true
	}
	if m.Type == "cgroup" {
		return s.mountCgroup(rootFD, m, o)
	}
	dest := m.Destination
	isFile := false
	if o.Bind {
		st, err := os.Stat(m.Source)
		if err != nil {
			return err
		}
		isFile = !st.IsDir()
	}
	fd, err := mkdirAllInRoot(rootFD, dest, isFile)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	data := strings.Join(o.Data, ",")
	if o.Bind {
		flags := uintptr(unix.MS_BIND)
		if o.Rec {
			flags |= unix.MS_REC
		}
		if err := mount(m.Source, fdPath(fd), "", flags, ""); err != nil {
			return err
		}
		// Flags of a bind mount are set by a remount of it.
		if o.Flags&^unix.MS_REMOUNT != 0 || o.Clear != 0 {
			if err := remountInRoot(rootFD, dest, o.Flags); err != nil {
				return err
			}
		}
	} else {
		if err := mount(m.Source, fdPath(fd), m.Type, o.Flags, data); err != nil {
			return err
		}
	}
	if o.Prop != 0 {
		nfd, err := openInRoot(rootFD, dest, 0)
		if err != nil {
			return err
		}
		defer unix.Close(nfd)
		if err := mount("", fdPath(nfd), "", o.Prop, ""); err != nil {
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	return nil
}

// remountInRoot remounts the mount now on dest (resolved again, so that the
// new mount is the one found) with flags, keeping the flags the kernel
// locks.
func remountInRoot(rootFD int, dest string, flags uintptr) error {
	fd, err := openInRoot(rootFD, dest, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return remount(fdPath(fd), flags)
}

func remount(target string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	locked := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|flags&^unix.MS_REMOUNT|locked, "")
}

// mountCgroup presents the container's own cgroup at the destination: on
// v2 a cgroup2 mount (which a cgroup namespace roots at the container's
// cgroup); on v1 a tmpfs with one bind of the container's cgroup directory
// per controller.
func (s *session) mountCgroup(rootFD int, m specs.Mount, o MountOptions) error {
	cg := s.c.Cgroup
	fd, err := mkdirAllInRoot(rootFD, m.Destination, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if cg.V2 {
		if err := mount("cgroup2", fdPath(fd), "cgroup2", o.Flags, ""); err == nil {
			return nil
		}
		// Without a cgroup namespace of our own, bind the cgroup directory.
		if err := mount(cg.Paths[""], fdPath(fd), "", unix.MS_BIND, ""); err != nil {
			return err
		}
		return remountInRoot(rootFD, m.Destination, o.Flags)
	}
	if err := mount("tmpfs", fdPath(fd), "tmpfs", o.Flags&^unix.MS_RDONLY, "mode=755"); err != nil {
		return err
	}
	for name, host := range cg.Paths {
		if name == "" || strings.ContainsRune(name, '/') {
			continue
		}
		dest := path.Join(m.Destination, name)
		sub, err := mkdirAllInRoot(rootFD, dest, false)
		if err != nil {
			return err
		}
		err = mount(host, fdPath(sub), "", unix.MS_BIND|unix.MS_REC, "")
		unix.Close(sub)
		if err != nil {
			return fmt.Errorf("bind cgroup %s: %w", name, err)
		}
		if err := remountInRoot(rootFD, dest, o.Flags|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
			return err
		}
	}
	if o.Flags&unix.MS_RDONLY != 0 {
		return remountInRoot(rootFD, m.Destination, o.Flags)
	}
	return nil
}

// openInRoot opens p (O_PATH) as if rootFD were /.
func openInRoot(rootFD int, p string, flags uint64) (int, error) {
	for {
		fd, err := unix.Openat2(rootFD, p, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC | flags,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// mkdirAllInRoot opens p inside the root, creating what is missing of it:
// directories, and an empty file at the end if file is set.
func mkdirAllInRoot(rootFD int, p string, file bool) (int, error) {
	fd, err := openInRoot(rootFD, p, 0)
	if err != unix.ENOENT {
		return fd, err
	}
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	parent, err := unix.Dup(rootFD)
	if err != nil {
		return -1, err
	}
	cur := ""
	for i, name := range parts {
		cur += "/" + name
		fd, err := openInRoot(rootFD, cur, 0)
		if err == unix.ENOENT {
			last := i == len(parts)-1
			if last && file {
				var nfd int
				nfd, err = unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
				if err == nil {
					unix.Close(nfd)
				}
			} else {
				err = unix.Mkdirat(parent, name, 0o755)
			}
			if err != nil && err != unix.EEXIST {
				unix.Close(parent)
				return -1, fmt.Errorf("create %s in root: %w", cur, err)
			}
			fd, err = openInRoot(rootFD, cur, 0)
		}
		unix.Close(parent)
		if err != nil {
			return -1, fmt.Errorf("open %s in root: %w", cur, err)
		}
		parent = fd
	}
	return parent, nil
}

// Device is a device node to create in the container.
type Device struct {
	Path         string
	Type         uint32 // S_IFCHR, S_IFBLK or S_IFIFO
	Major, Minor int64
	Mode         uint32
	UID, GID     int // -1: leave
}

var defaultDevices = []Device{
	{"/dev/null", unix.S_IFCHR, 1, 3, 0o666, -1, -1},
	{"/dev/zero", unix.S_IFCHR, 1, 5, 0o666, -1, -1},
	{"/dev/full", unix.S_IFCHR, 1, 7, 0o666, -1, -1},
	{"/dev/random", unix.S_IFCHR, 1, 8, 0o666, -1, -1},
	{"/dev/urandom", unix.S_IFCHR, 1, 9, 0o666, -1, -1},
	{"/dev/tty", unix.S_IFCHR, 5, 0, 0o666, -1, -1},
}

// Devices lists the device nodes a container gets: the spec's, then the
// default ones it does not list.
func Devices(spec *specs.Spec) ([]Device, error) {
	var devs []Device
	seen := map[string]bool{}
	if spec.Linux != nil {
		for _, d := range spec.Linux.Devices {
			typ := uint32(unix.S_IFCHR)
			switch d.Type {
			case "b":
				typ = unix.S_IFBLK
			case "p":
				typ = unix.S_IFIFO
			case "c", "u":
			default:
				return nil, fmt.Errorf("device %s: unknown type %q", d.Path, d.Type)
			}
			mode := uint32(0o666)
			if d.FileMode != nil {
				mode = uint32(*d.FileMode) & 0o7777
			}
			dev := Device{d.Path, typ, d.Major, d.Minor, mode, -1, -1}
			if d.UID != nil {
				dev.UID = int(*d.UID)
			}
			if d.GID != nil {
				dev.GID = int(*d.GID)
			}
			devs = append(devs, dev)
			seen[path.Clean(d.Path)] = true
		}
	}
	for _, d := range defaultDevices {
		if !seen[d.Path] {
			devs = append(devs, d)
		}
	}
	return devs, nil
}

// createDevices makes the devices and the usual /dev links.
func createDevices(rootFD int, spec *specs.Spec) error {
	devs, err := Devices(spec)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if err := makeDevice(rootFD, d); err != nil {
			return fmt.Errorf("create device %s: %w", d.Path, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
		{"pts/ptmx", "/dev/ptmx"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	devFD, err := mkdirAllInRoot(rootFD, "/dev", false)
	if err != nil {
		return err
	}
	defer unix.Close(devFD)
	for _, l := range links {
		name := strings.TrimPrefix(l[1], "/dev/")
		if l[1] == "/dev/ptmx" {
			// A ptmx node left by the image must give way to the link into
			// the container's own devpts instance.
			_ = unix.Unlinkat(devFD, name, 0)
		}
		if err := unix.Symlinkat(l[0], devFD, name); err != nil && err != unix.EEXIST {
			return fmt.Errorf("link %s: %w", l[1], err)
		}
	}
	return nil
}

func makeDevice(rootFD int, d Device) error {
	dir, name := path.Split(path.Clean("/" + d.Path))
	dfd, err := mkdirAllInRoot(rootFD, dir, false)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	_ = unix.Unlinkat(dfd, name, 0)
	err = unix.Mknodat(dfd, name, d.Type|d.Mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
	if err == unix.EPERM {
		// In a user namespace, or refused by the device cgroup: bind the
		// host's node instead.
		fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
		nfd, err := openInRoot(rootFD, d.Path, 0)
		if err != nil {
			return err
		}
		defer unix.Close(nfd)
		return mount(d.Path, fdPath(nfd), "", unix.MS_BIND, "")
	}
	if err != nil {
		return err
	}
	// mknod applies the umask; set the mode asked for.
	if err := unix.Fchmodat(dfd, name, d.Mode, 0); err != nil {
		return err
	}
	if d.UID != -1 || d.GID != -1 {
		return unix.Fchownat(dfd, name, d.UID, d.GID, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// enterRoot makes the rootfs the process's root. pivot_root(".", ".")
// stacks the old root on top of the new one at "/"; after it, the old root
// is made a slave (so its unmount does not propagate to the host) and lazily
// unmounted from our cwd, which is still it.
func (s *session) enterRoot() error {
	rootfs := s.c.Rootfs
	if s.c.NoPivot {
		if err := unix.Chdir(rootfs); err != nil {
			return err
		}
		if err := mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move root: %w", err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		return unix.Chdir("/")
	}
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if l := s.c.Spec.Linux; l != nil && l.RootfsPropagation != "" {
		if err := mount("", "/", "", propagationFlags[l.RootfsPropagation], ""); err != nil {
			return fmt.Errorf("set rootfs propagation: %w", err)
		}
	}
	return nil
}

// makeMountPrivate makes the mount that holds dir private.
func makeMountPrivate(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	parent := dir
	best := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if (mp == "/" || parent == mp || strings.HasPrefix(parent, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return errors.New("no parent mount")
	}
	return mount("", best, "", unix.MS_PRIVATE, "")
}

// finishRoot applies what must come after the root is in place: a
// read-only root, masked and read-only paths.
func (s *session) finishRoot() error {
	spec := s.c.Spec
	if spec.Linux != nil {
		for _, p := range spec.Linux.MaskedPaths {
			if err := maskPath(p); err != nil {
				return fmt.Errorf("mask %s: %w", p, err)
			}
		}
		for _, p := range spec.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return fmt.Errorf("make %s read-only: %w", p, err)
			}
		}
	}
	if spec.Root != nil && spec.Root.Readonly {
		if err := remount("/", unix.MS_RDONLY); err != nil {
			return fmt.Errorf("make root read-only: %w", err)
		}
	}
	return nil
}

func maskPath(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
	}
	return mount("/dev/null", p, "", unix.MS_BIND, "")
}

func readonlyPath(p string) error {
	err := mount(p, p, "", unix.MS_BIND|unix.MS_REC, "")
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	return remount(p, unix.MS_RDONLY)
}

// mount is mount(2), retried on EINTR.
func mount(source, target, fstype string, flags uintptr, data string) error {
	for {
		err := unix.Mount(source, target, fstype, flags, data)
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "mount", Path: target, Err: err}
			}
			return nil
		}
	}
}
