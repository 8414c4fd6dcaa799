package engine

import (
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
)

// allCaps are every capability, for --privileged and --cap-add ALL.
var allCaps = runtime.Capabilities

// specInput is what a container's OCI spec is made from.
type specInput struct {
	c      *container.Container
	rootfs string // the mounted root file system
	user   resolvedUser
	mounts []specs.Mount // volumes, binds, tmpfs, /etc files
	netns  string        // a namespace to join ("" for a new one, "host" for none)
}

// buildSpec turns a container record into the OCI runtime spec berth's
// runtime (or an external one) runs: Docker's defaults — capabilities,
// seccomp profile, masked paths — adjusted by the user's options.
func buildSpec(in specInput) (*specs.Spec, error) {
	c, hc := in.c, &in.c.HostConfig
	s := runtime.DefaultSpec()
	s.Root = &specs.Root{Path: in.rootfs, Readonly: hc.ReadonlyRootfs}
	s.Hostname = c.Config.Hostname
	s.Domainname = c.Config.Domainname
	p := s.Process
	p.Args = append([]string{c.Path}, c.Args...)
	p.Env = c.Config.Env
	p.Cwd = c.Config.WorkingDir
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	p.Terminal = c.Config.Tty
	p.User = specs.User{UID: in.user.uid, GID: in.user.gid, AdditionalGids: in.user.groups}
	p.Rlimits = nil
	for _, u := range hc.Ulimits {
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	p.NoNewPrivileges = true
	for _, o := range hc.SecurityOpt {
		switch o {
		case "no-new-privileges=false":
			p.NoNewPrivileges = false
		}
	}

	caps, err := capabilities(hc)
	if err != nil {
		return nil, err
	}
	p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}

	// Mounts: the defaults, minus any a user mount replaces, plus the user's.
	var mounts []specs.Mount
	for _, m := range s.Mounts {
		if hc.Privileged && (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") {
			m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
		if !slices.ContainsFunc(in.mounts, func(u specs.Mount) bool { return u.Destination == m.Destination }) {
			mounts = append(mounts, m)
		}
	}
	s.Mounts = append(mounts, in.mounts...)

	l := s.Linux
	l.CgroupsPath = "/berth/" + c.ID
	l.Sysctl = hc.Sysctls
	switch in.netns {
	case "host":
		l.Namespaces = slices.DeleteFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
		// With the host's network, the host's name: Docker keeps the UTS
		// namespace private but names it after the host.
	case "":
	default:
		for i := range l.Namespaces {
			if l.Namespaces[i].Type == specs.NetworkNamespace {
				l.Namespaces[i].Path = in.netns
			}
		}
	}
	if hc.Privileged {
		l.MaskedPaths, l.ReadonlyPaths = nil, nil
	}
	r := l.Resources
	if hc.Memory > 0 || hc.MemoryReservation > 0 || hc.MemorySwap != 0 {
		r.Memory = &specs.LinuxMemory{}
		if hc.Memory > 0 {
			r.Memory.Limit = &hc.Memory
		}
		if hc.MemoryReservation > 0 {
			r.Memory.Reservation = &hc.MemoryReservation
		}
		if hc.MemorySwap != 0 {
			sw := hc.MemorySwap
			r.Memory.Swap = &sw
		}
	}
	if hc.NanoCpus > 0 || hc.CpuShares > 0 || hc.CpusetCpus != "" || hc.CpuQuota > 0 {
		r.CPU = &specs.LinuxCPU{Cpus: hc.CpusetCpus}
		if hc.CpuShares > 0 {
			sh := uint64(hc.CpuShares)
			r.CPU.Shares = &sh
		}
		if hc.NanoCpus > 0 {
			period := uint64(100000)
			quota := hc.NanoCpus * int64(period) / 1e9
			r.CPU.Period, r.CPU.Quota = &period, &quota
		} else if hc.CpuQuota > 0 {
			q := hc.CpuQuota
			r.CPU.Quota = &q
			if hc.CpuPeriod > 0 {
				per := uint64(hc.CpuPeriod)
				r.CPU.Period = &per
			}
		}
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: ptr(*hc.PidsLimit)}
	}
	r.Devices = defaultDeviceRules()
	if hc.Privileged {
		r.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, d := range hc.Devices {
		dev, rule, err := deviceFor(d)
		if err != nil {
			return nil, err
		}
		l.Devices = append(l.Devices, dev)
		if !hc.Privileged {
			r.Devices = append(r.Devices, rule)
		}
	}

	if !hc.Privileged && !slices.Contains(hc.SecurityOpt, "seccomp=unconfined") {
		prof, err := seccompProfile(hc.SecurityOpt, s)
		if err != nil {
			return nil, err
		}
		l.Seccomp = prof
	}
	return s, nil
}

// boundingCaps are the capabilities of the host's bounding set, which is
// what "all" can mean (--privileged, --cap-add ALL): as in Docker, one
// the host lacks is left out rather than failing the start.
func boundingCaps() []string {
	var caps []string
	for i, c := range allCaps() { // in capability number order
		if ok, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0); err == nil && ok == 1 {
			caps = append(caps, c)
		}
	}
	return caps
}

// capabilities applies --privileged, --cap-add and --cap-drop to Docker's
// default set.
func capabilities(hc *container.HostConfig) ([]string, error) {
	if hc.Privileged {
		return boundingCaps(), nil
	}
	norm := func(c string) (string, error) {
		c = strings.ToUpper(c)
		if c == "ALL" {
			return c, nil
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(allCaps(), c) {
			return "", errdefs.InvalidArgument("unknown capability: %q", c)
		}
		return c, nil
	}
	caps := runtime.DefaultCapabilities()
	for _, d := range hc.CapDrop {
		d, err := norm(d)
		if err != nil {
			return nil, err
		}
		if d == "ALL" {
			caps = nil
			continue
		}
		caps = slices.DeleteFunc(caps, func(c string) bool { return c == d })
	}
	for _, a := range hc.CapAdd {
		a, err := norm(a)
		if err != nil {
			return nil, err
		}
		if a == "ALL" {
			caps = boundingCaps()
			continue
		}
		if !slices.Contains(caps, a) {
			caps = append(caps, a)
		}
	}
	return caps, nil
}

func seccompProfile(opts []string, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	for _, o := range opts {
		if f, ok := strings.CutPrefix(o, "seccomp="); ok {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, errdefs.InvalidArgument("opening seccomp profile (%s) failed: %v", f, err)
			}
			prof, err := seccomp.LoadProfile(string(b), s)
			if err != nil {
				return nil, errdefs.InvalidArgument("seccomp profile %s: %v", f, err)
			}
			return prof, nil
		}
	}
	return seccomp.GetDefaultProfile(s)
}

// defaultDeviceRules is Docker's device cgroup allow-list.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	c := func(major, minor int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: access}
	}
	wild := int64(-1)
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		c(1, 3, "rwm"), c(1, 5, "rwm"), c(1, 7, "rwm"), c(1, 8, "rwm"), c(1, 9, "rwm"), // null zero full random urandom
		c(5, 0, "rwm"), c(5, 1, "rwm"), c(5, 2, "rwm"), // tty console ptmx
		{Allow: true, Type: "c", Major: ptr(int64(136)), Minor: &wild, Access: "rwm"}, // pts
		c(10, 200, "rwm"), // tun
		{Allow: false, Type: "c", Major: ptr(int64(10)), Minor: ptr(int64(229)), Access: "rwm"},
	}
}

func ptr[T any](v T) *T { return &v }

// deviceFor reads a host device for --device.
func deviceFor(d container.DeviceMapping) (specs.LinuxDevice, specs.LinuxDeviceCgroup, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.PathOnHost, &st); err != nil {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, errdefs.InvalidArgument("error gathering device information while adding custom device %q: %v", d.PathOnHost, err)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, errdefs.InvalidArgument("%s is not a device", d.PathOnHost)
	}
	major, minor := int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	dev := specs.LinuxDevice{Path: d.PathInContainer, Type: typ, Major: major, Minor: minor, FileMode: ptr(os.FileMode(st.Mode & 0o777)), UID: ptr(st.Uid), GID: ptr(st.Gid)}
	perms := d.CgroupPermissions
	if perms == "" {
		perms = "rwm"
	}
	return dev, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: perms}, nil
}

// resolvedUser is a user resolved against the image's /etc/passwd and /etc/group.
type resolvedUser struct {
	uid, gid uint32
	groups   []uint32
	home     string
}

// resolveUser reads `user[:group]` (names or numbers) as Docker does,
// looking names up in the container's own /etc/passwd and /etc/group.
func resolveUser(rootfs, spec string) (resolvedUser, error) {
	u := resolvedUser{home: "/"}
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	passwd, _ := readInRoot(rootfs, "/etc/passwd")
	group, _ := readInRoot(rootfs, "/etc/group")
	found := false
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 7 {
			continue
		}
		if f[0] == userPart || f[2] == userPart {
			uid, err1 := strconv.ParseUint(f[2], 10, 32)
			gid, err2 := strconv.ParseUint(f[3], 10, 32)
			if err1 != nil || err2 != nil {
				continue
			}
			u.uid, u.gid, u.home, found = uint32(uid), uint32(gid), f[5], true
			break
		}
	}
	if !found {
		n, err := strconv.ParseUint(userPart, 10, 32)
		if err != nil {
			return u, errdefs.InvalidArgument("unable to find user %s: no matching entries in passwd file", userPart)
		}
		u.uid, u.gid = uint32(n), uint32(n)
		if u.uid == 0 {
			u.home = "/root"
		}
	}
	userName := userPart
	if hasGroup {
		gfound := false
		for _, line := range strings.Split(string(group), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 3 && (f[0] == groupPart || f[2] == groupPart) {
				if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
					u.gid, gfound = uint32(gid), true
					break
				}
			}
		}
		if !gfound {
			n, err := strconv.ParseUint(groupPart, 10, 32)
			if err != nil {
				return u, errdefs.InvalidArgument("unable to find group %s: no matching entries in group file", groupPart)
			}
			u.gid = uint32(n)
		}
	}
	// Supplementary groups: every group listing the user by name.
	for _, line := range strings.Split(string(group), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m != "" && m == userName {
				if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(gid) != u.gid {
					u.groups = append(u.groups, uint32(gid))
				}
			}
		}
	}
	return u, nil
}

// readInRoot reads a small file of the container's root file system,
// resolving the path inside it (symlinks cannot lead out).
func readInRoot(root, p string) ([]byte, error) {
	dfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat2(dfd, strings.TrimPrefix(path.Clean("/"+p), "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	// At most 1 MiB (an /etc/passwd is a few KiB): read as much as the
	// file holds rather than allocate the limit for every start.
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// mkdirInRoot makes dir and its missing parents inside the container's
// root file system, every component resolved inside it (a symlink cannot
// lead out), what it creates owned by uid:gid — as Docker makes a missing
// working directory.
func mkdirInRoot(root, dir string, uid, gid uint32) error {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rfd)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	parts := strings.Split(strings.Trim(path.Clean("/"+dir), "/"), "/")
	for i := range parts {
		if parts[i] == "" {
			continue
		}
		p := strings.Join(parts[:i+1], "/")
		fd, err := unix.Openat2(rfd, p, how)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if err != unix.ENOENT {
			return fmt.Errorf("working directory %s: %w", dir, err)
		}
		parent := "."
		if i > 0 {
			parent = strings.Join(parts[:i], "/")
		}
		pfd, err := unix.Openat2(rfd, parent, how)
		if err != nil {
			return fmt.Errorf("working directory %s: %w", dir, err)
		}
		err = unix.Mkdirat(pfd, parts[i], 0o755)
		if err == nil {
			err = unix.Fchownat(pfd, parts[i], int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.Close(pfd)
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("working directory %s: %w", dir, err)
		}
	}
	return nil
}
