package initproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": 10,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15, "RLIMIT_SIGPENDING": 11, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// RlimitNumber returns the resource number of an RLIMIT_* name.
func RlimitNumber(name string) (int, bool) {
	n, ok := rlimitNames[name]
	return n, ok
}

func setRlimits(rl []specs.POSIXRlimit) error {
	for _, r := range rl {
		n, ok := rlimitNames[r.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", r.Type)
		}
		lim := unix.Rlimit{Cur: r.Soft, Max: r.Hard}
		if err := unix.Prlimit(0, n, &lim, nil); err != nil {
			return fmt.Errorf("set %s to %d:%d: %w", r.Type, r.Soft, r.Hard, err)
		}
	}
	return nil
}

var capNames = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// CapNumber returns the number of a CAP_* name.
func CapNumber(name string) (uint, bool) {
	n, ok := capNames[strings.ToUpper(name)]
	return n, ok
}

// CapNames lists the capability names known to the runtime.
func CapNames() []string {
	out := make([]string, 0, len(capNames))
	for n := range capNames {
		out = append(out, n)
	}
	return out
}

func lastCap() uint {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return uint(n)
		}
	}
	return 40
}

// capMask turns names into a bit mask, skipping capabilities the kernel
// does not know (as runc does, so a newer spec runs on an older kernel).
func capMask(names []string, last uint) uint64 {
	var m uint64
	for _, n := range names {
		if c, ok := capNames[strings.ToUpper(n)]; ok && c <= last {
			m |= 1 << c
		}
	}
	return m
}

// setIdentity gives the calling thread the process's user, groups and
// capabilities. These are per-thread calls on purpose: only this thread
// execs, and the kernel builds the new process's credentials from it.
func setIdentity(u specs.User, caps *specs.LinuxCapabilities) error {
	last := lastCap()
	if caps != nil {
		bnd := capMask(caps.Bounding, last)
		for c := uint(0); c <= last; c++ {
			if bnd&(1<<c) == 0 {
				if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
					return fmt.Errorf("drop bounding capability %d: %w", c, err)
				}
			}
		}
	}
	// Keep the permitted set across the uid change; capset below sets
	// exactly what the spec asks for.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	gids := make([]uint32, 0, len(u.AdditionalGids))
	gids = append(gids, u.AdditionalGids...)
	if err := setgroups(gids); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := rawSetres(unix.SYS_SETRESGID, u.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := rawSetres(unix.SYS_SETRESUID, u.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	if caps == nil {
		if u.UID != 0 {
			return capset(0, 0, 0)
		}
		return nil
	}
	eff, perm, inh := capMask(caps.Effective, last), capMask(caps.Permitted, last), capMask(caps.Inheritable, last)
	if err := capset(eff, perm, inh); err != nil {
		return fmt.Errorf("apply capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// An ambient capability must be permitted and inheritable; others are
	// skipped, as runc does, rather than failing the container.
	amb := capMask(caps.Ambient, last) & perm & inh
	for c := uint(0); c <= last; c++ {
		if amb&(1<<c) != 0 {
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
				return fmt.Errorf("raise ambient capability %d: %w", c, err)
			}
		}
	}
	return nil
}

func rawSetres(nr uintptr, id uint32) error {
	for {
		_, _, e := unix.RawSyscall(nr, uintptr(id), uintptr(id), uintptr(id))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func capset(eff, perm, inh uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0] = unix.CapUserData{Effective: uint32(eff), Permitted: uint32(perm), Inheritable: uint32(inh)}
	data[1] = unix.CapUserData{Effective: uint32(eff >> 32), Permitted: uint32(perm >> 32), Inheritable: uint32(inh >> 32)}
	return unix.Capset(&hdr, &data[0])
}

// setupConsole creates a pty in the container's devpts instance, sends its
// master to the console socket, binds its slave on /dev/console and makes
// it the process's stdio and controlling terminal.
//
// An exec'd process (console false) gets a pty but leaves /dev/console alone.
func (s *session) setupConsole(rootFD int, console bool) error {
	if s.c.ConsoleFD < 0 {
		return fmt.Errorf("process.terminal is set but no console socket was given")
	}
	ptmx, err := openInRoot(rootFD, "/dev/pts/ptmx", 0)
	if err != nil {
		return fmt.Errorf("find /dev/pts/ptmx: %w", err)
	}
	master, err := unix.Open(fdPath(ptmx), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	unix.Close(ptmx)
	if err != nil {
		return fmt.Errorf("open ptmx: %w", err)
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("get pty number: %w", err)
	}
	slavePath := "/dev/pts/" + strconv.Itoa(int(n))
	sfd, err := openInRoot(rootFD, slavePath, 0)
	if err != nil {
		return err
	}
	slave, err := unix.Open(fdPath(sfd), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	unix.Close(sfd)
	if err != nil {
		return fmt.Errorf("open pty slave: %w", err)
	}
	defer unix.Close(slave)
	if console {
		cfd, err := mkdirAllInRoot(rootFD, "/dev/console", true)
		if err != nil {
			return err
		}
		err = mount(fdPath(slave), fdPath(cfd), "", unix.MS_BIND, "")
		unix.Close(cfd)
		if err != nil {
			return fmt.Errorf("bind /dev/console: %w", err)
		}
	}
	rights := unix.UnixRights(master)
	if err := unix.Sendmsg(s.c.ConsoleFD, []byte(slavePath), rights, nil, 0); err != nil {
		return fmt.Errorf("send pty master: %w", err)
	}
	unix.Close(s.c.ConsoleFD)
	if _, err := unix.Setsid(); err != nil && err != unix.EPERM {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return err
		}
	}
	if ws := s.c.Process.ConsoleSize; ws != nil {
		_ = unix.IoctlSetWinsize(0, unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(ws.Height), Col: uint16(ws.Width)})
	}
	return nil
}
