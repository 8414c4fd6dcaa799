package forkinit

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// op kinds.
const (
	kSys          = iota // a plain system call
	kOpenMkdir           // open a path in the root, creating it if missing
	kRemount             // bind-remount keeping the flags the kernel locks
	kMask                // mask a path: tmpfs on a directory, /dev/null on a file
	kMknod               // make a device node, or bind the host's if refused
	kLook                // find the executable among candidates
	kExec                // execve the found executable
	kWait                // read one byte (start signal)
	kReport              // write a message to the sync socket
	kHooks               // ask the parent to run hooks, wait for its answer
	kGo                  // wait for the parent's go-ahead (one zero byte)
	kWriteFile           // open a file, write a value, close it
	kDropBounding        // drop capabilities from the bounding set
	kBindTree            // make a directory and bind a tree there, with attributes
)

// op is one step of the child's program. It holds no Go pointers: the
// child never writes a pointer (no write barrier) and the parent keeps
// what the uintptrs point to alive.
type op struct {
	kind   uintptr
	nr     uintptr
	a      [6]uintptr
	ok     [2]uintptr // errnos that are not a failure
	slot   uintptr    // fd number to move a returned fd to (0: none)
	skipOK uintptr    // ops to skip after success
	skipEr uintptr    // ops to skip after a tolerated error
	code   uintptr    // exit status on failure
}

// scratch is memory the child writes: stat and statfs results, the
// message it reports. The parent allocates it; the child's copy is its
// own.
type scratch struct {
	stat   unix.Stat_t
	statfs unix.Statfs_t
	msg    [4]uint32
	attr   unix.MountAttr
	empty  [1]byte // ""
	found  uintptr
	one    [1]byte
	// sigmask is the forking thread's signal mask, restored before exec.
	sigmask uint64
	// cands are the executable's candidate paths (NUL-terminated bytes
	// the parent keeps alive), for kLook. The child only reads them.
	cands []uintptr
}

// cloneArgs is struct clone_args.
type cloneArgs struct {
	flags      uint64
	pidfd      uint64
	childTID   uint64
	parentTID  uint64
	exitSignal uint64
	stack      uint64
	stackSize  uint64
	tls        uint64
	setTID     uint64
	setTIDSize uint64
	cgroup     uint64
}

// Messages the child writes to the sync socket: msg[0] is the op index of
// a failure, or one of these.
const (
	msgReady = 0xffffffff
	msgHooks = 0xfffffffe
)

// forkRun clones the child and, in it, runs the program. It returns the
// child's pid in the parent; it never returns in the child.
//
//go:norace
//go:nosplit
func forkRun(args *cloneArgs, ops []op, s *scratch, syncFD uintptr) (pid uintptr, err unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	if e != 0 || r != 0 {
		return r, e
	}
	runOps(ops, s, syncFD)
	for {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 1, 0, 0)
	}
}

// runOps is the child.
//
//go:norace
//go:nosplit
func runOps(ops []op, s *scratch, syncFD uintptr) {
	for i := 0; i < len(ops); i++ {
		o := &ops[i]
		e := step(o, s, syncFD)
		if e == 0 {
			i += int(o.skipOK)
			continue
		}
		if e == o.ok[0] || e == o.ok[1] {
			i += int(o.skipEr)
			continue
		}
		code := o.code
		if code == 0 {
			code = 1
		}
		if o.kind == kExec || o.kind == kLook {
			code = e >> 16
			e &= 0xffff
		}
		s.msg[0], s.msg[1], s.msg[2] = uint32(i), uint32(e), uint32(code)
		unix.RawSyscall(unix.SYS_WRITE, syncFD, uintptr(unsafe.Pointer(&s.msg[0])), 16)
		for {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, code, 0, 0)
		}
	}
}

// step runs one op and returns 0 or an errno (for kLook and kExec, the
// exit code in the bits above 16).
//
//go:norace
//go:nosplit
func step(o *op, s *scratch, syncFD uintptr) uintptr {
	switch o.kind {
	case kSys:
		r, _, e := unix.RawSyscall6(o.nr, o.a[0], o.a[1], o.a[2], o.a[3], o.a[4], o.a[5])
		if e != 0 {
			return uintptr(e)
		}
		if o.slot != 0 {
			return moveFD(r, o.slot)
		}
	case kOpenMkdir:
		// a: root fd, path, open_how, parent fd, name, is-file
		r, _, e := unix.RawSyscall6(unix.SYS_OPENAT2, o.a[0], o.a[1], o.a[2], 24, 0, 0)
		if e == unix.ENOENT {
			if o.a[5] != 0 {
				fd, _, e2 := unix.RawSyscall6(unix.SYS_OPENAT, o.a[3], o.a[4], unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644, 0, 0)
				if e2 == 0 {
					unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
				} else if e2 != unix.EEXIST {
					return uintptr(e2)
				}
			} else {
				_, _, e2 := unix.RawSyscall(unix.SYS_MKDIRAT, o.a[3], o.a[4], 0o755)
				if e2 != 0 && e2 != unix.EEXIST {
					return uintptr(e2)
				}
			}
			r, _, e = unix.RawSyscall6(unix.SYS_OPENAT2, o.a[0], o.a[1], o.a[2], 24, 0, 0)
		}
		if e != 0 {
			return uintptr(e)
		}
		return moveFD(r, o.slot)
	case kRemount:
		// a: target, flags, locked-flags mask
		_, _, e := unix.RawSyscall(unix.SYS_STATFS, o.a[0], uintptr(unsafe.Pointer(&s.statfs)), 0)
		if e != 0 {
			return uintptr(e)
		}
		flags := o.a[1] | uintptr(s.statfs.Flags)&o.a[2] | unix.MS_BIND | unix.MS_REMOUNT
		_, _, e = unix.RawSyscall6(unix.SYS_MOUNT, o.a[3], o.a[0], o.a[3], flags, o.a[3], 0)
		return uintptr(e)
	case kMask:
		// a: path, "/dev/null", "tmpfs", "size=0"
		_, _, e := unix.RawSyscall6(unix.SYS_NEWFSTATAT, atFDCWD, o.a[0], uintptr(unsafe.Pointer(&s.stat)), 0, 0, 0)
		if e != 0 {
			return uintptr(e)
		}
		if s.stat.Mode&unix.S_IFMT == unix.S_IFDIR {
			_, _, e = unix.RawSyscall6(unix.SYS_MOUNT, o.a[2], o.a[0], o.a[2], unix.MS_RDONLY, o.a[3], 0)
		} else {
			_, _, e = unix.RawSyscall6(unix.SYS_MOUNT, o.a[1], o.a[0], 0, unix.MS_BIND, 0, 0)
		}
		return uintptr(e)
	case kMknod:
		// a: dir fd, name, mode, dev, host path, target path (/proc/self/fd/N of a fresh open)
		_, _, e := unix.RawSyscall6(unix.SYS_MKNODAT, o.a[0], o.a[1], o.a[2], o.a[3], 0, 0)
		if e != unix.EPERM {
			return uintptr(e)
		}
		// Refused (device cgroup, or no CAP_MKNOD): bind the host's node.
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, o.a[0], o.a[1], unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644, 0, 0)
		if e != 0 {
			return uintptr(e)
		}
		unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		fd, _, e = unix.RawSyscall6(unix.SYS_OPENAT, o.a[0], o.a[1], unix.O_PATH|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			return uintptr(e)
		}
		if e := moveFD(fd, o.slot); e != 0 {
			return e
		}
		_, _, e = unix.RawSyscall6(unix.SYS_MOUNT, o.a[4], o.a[5], 0, unix.MS_BIND, 0, 0)
		return uintptr(e)
	case kLook:
		noexec := false
		for i := 0; i < len(s.cands); i++ {
			p := s.cands[i]
			_, _, e := unix.RawSyscall6(unix.SYS_NEWFSTATAT, atFDCWD, p, uintptr(unsafe.Pointer(&s.stat)), 0, 0, 0)
			if e != 0 {
				if e != unix.ENOENT && e != unix.ENOTDIR {
					noexec = true
				}
				continue
			}
			if s.stat.Mode&unix.S_IFMT == unix.S_IFDIR || s.stat.Mode&0o111 == 0 {
				noexec = true
				continue
			}
			s.found = p
			return 0
		}
		if noexec {
			return 126<<16 | uintptr(unix.EACCES)
		}
		return 127<<16 | uintptr(unix.ENOENT)
	case kExec:
		// a: argv, envp
		_, _, e := unix.RawSyscall(unix.SYS_EXECVE, s.found, o.a[0], o.a[1])
		if e == unix.ENOENT {
			return 127<<16 | uintptr(e)
		}
		return 126<<16 | uintptr(e)
	case kWait:
		// a: fd
		for {
			n, _, e := unix.RawSyscall(unix.SYS_READ, o.a[0], uintptr(unsafe.Pointer(&s.one[0])), 1)
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				return uintptr(e)
			}
			if n != 1 {
				return uintptr(unix.EPIPE)
			}
			return 0
		}
	case kWriteFile:
		// a: path, buffer, length
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, atFDCWD, o.a[0], unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			return uintptr(e)
		}
		_, _, e = unix.RawSyscall(unix.SYS_WRITE, fd, o.a[1], o.a[2])
		unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		return uintptr(e)
	case kBindTree:
		// a: source, directory fd, name, attributes (to set | to clear<<32),
		// flags for a remount, /proc/self/fd/<directory fd>/<name>
		_, _, e := unix.RawSyscall(unix.SYS_MKDIRAT, o.a[1], o.a[2], 0o755)
		if e != 0 && e != unix.EEXIST {
			return uintptr(e)
		}
		empty := uintptr(unsafe.Pointer(&s.empty[0]))
		fd, _, e := unix.RawSyscall(unix.SYS_OPEN_TREE, atFDCWD, o.a[0], unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if e == 0 {
			s.attr = unix.MountAttr{Attr_set: uint64(o.a[3] & 0xffffffff), Attr_clr: uint64(o.a[3] >> 32)}
			_, _, e = unix.RawSyscall6(unix.SYS_MOUNT_SETATTR, fd, empty, unix.AT_EMPTY_PATH, uintptr(unsafe.Pointer(&s.attr)), unsafe.Sizeof(s.attr), 0)
			if e == 0 {
				_, _, e = unix.RawSyscall6(unix.SYS_MOVE_MOUNT, fd, empty, o.a[1], o.a[2], unix.MOVE_MOUNT_F_EMPTY_PATH, 0)
			}
			unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		}
		if e != unix.ENOSYS {
			return uintptr(e)
		}
		// No new mount API: bind, then remount, keeping the flags the
		// kernel locks.
		_, _, e = unix.RawSyscall6(unix.SYS_MOUNT, o.a[0], o.a[5], 0, unix.MS_BIND|unix.MS_REC, 0, 0)
		if e != 0 {
			return uintptr(e)
		}
		_, _, e = unix.RawSyscall(unix.SYS_STATFS, o.a[5], uintptr(unsafe.Pointer(&s.statfs)), 0)
		if e != 0 {
			return uintptr(e)
		}
		locked := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
		flags := o.a[4] | uintptr(s.statfs.Flags)&locked | unix.MS_BIND | unix.MS_REMOUNT
		_, _, e = unix.RawSyscall6(unix.SYS_MOUNT, 0, o.a[5], 0, flags, 0, 0)
		return uintptr(e)
	case kDropBounding:
		// a: mask of the capabilities to drop, last capability
		for c := uintptr(0); c <= o.a[1]; c++ {
			if o.a[0]&(1<<c) == 0 {
				continue
			}
			_, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0)
			if e != 0 && e != unix.EINVAL {
				return uintptr(e)
			}
		}
	case kGo:
		n, _, e := unix.RawSyscall(unix.SYS_READ, syncFD, uintptr(unsafe.Pointer(&s.one[0])), 1)
		if e != 0 {
			return uintptr(e)
		}
		if n != 1 || s.one[0] != 0 {
			return uintptr(unix.ECANCELED)
		}
	case kReport, kHooks:
		s.msg[0] = msgReady
		if o.kind == kHooks {
			s.msg[0] = msgHooks
		}
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, syncFD, uintptr(unsafe.Pointer(&s.msg[0])), 16)
		if e != 0 || o.kind == kReport {
			return uintptr(e)
		}
		n, _, e := unix.RawSyscall(unix.SYS_READ, syncFD, uintptr(unsafe.Pointer(&s.one[0])), 1)
		if e != 0 {
			return uintptr(e)
		}
		if n != 1 || s.one[0] != 0 {
			return uintptr(unix.ECANCELED)
		}
	}
	return 0
}

// moveFD puts fd at number slot (close-on-exec) and closes fd.
//
//go:norace
//go:nosplit
func moveFD(fd, slot uintptr) uintptr {
	if fd == slot {
		return 0
	}
	_, _, e := unix.RawSyscall(unix.SYS_DUP3, fd, slot, unix.O_CLOEXEC)
	unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	return uintptr(e)
}

// EnvPlainFork, set (to anything) in the environment of the process that
// starts containers, makes Start fork the child even where it could share
// this process's memory: for debugging, and to compare the two.
const EnvPlainFork = "BERTH_RUNTIME_PLAIN_FORK"

// stackSize is the stack of a child that shares this process's memory.
// runOps and all it calls are nosplit, a chain the linker keeps within a
// few hundred bytes; nothing else runs on it (every signal is blocked, and
// has no handler in the child).
const stackSize = 16 << 10

// Start starts the child that runs p, with clone flags (namespaces) and,
// if cgroupFD is not negative, straight into that cgroup (v2). files
// become the child's descriptors 0, 1, 2, ... It returns the child's pid and
// a pidfd for it. The calling goroutine must be locked to its thread (the
// child is born in that thread's cgroups, on v1). A program starts once.
//
// Where it can, the child shares this process's memory (CLONE_VM, on a
// stack of its own) instead of being a fork of it: see doc.go. What the
// child reads and writes then stays allocated, whatever becomes of p,
// until the child has exec'd or exited (see lease).
func (p *Program) Start(flags uintptr, files []*os.File, cgroupFD int) (pid, pidfd int, err error) {
	if len(files) != p.nfds {
		return 0, 0, fmt.Errorf("forkinit: %d files for a program built for %d", len(files), p.nfds)
	}
	if len(files) == 0 {
		return 0, 0, errors.New("forkinit: no files")
	}
	if p.started {
		return 0, 0, errors.New("forkinit: program started twice")
	}
	p.started = true
	// Every descriptor is first copied above the range it goes to (the
	// files, the lease pipe, the slots), so that the child's dup3s into
	// place never overwrite one another.
	above := len(files) + 1 + nslots
	var high []int
	defer func() {
		for _, fd := range high {
			unix.Close(fd)
		}
	}()
	for i, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, above)
		if err != nil {
			return 0, 0, fmt.Errorf("forkinit: dup descriptor %d: %w", i, err)
		}
		high = append(high, fd)
		p.ops[i].a[0] = uintptr(fd)
	}
	if p.cgroupNS {
		flags &^= unix.CLONE_NEWCGROUP
	}
	p.args = cloneArgs{
		flags:      uint64(flags) | unix.CLONE_PIDFD,
		pidfd:      uint64(uintptr(unsafe.Pointer(&p.pidfd))),
		exitSignal: uint64(unix.SIGCHLD),
	}
	if cgroupFD >= 0 {
		p.args.flags |= unix.CLONE_INTO_CGROUP
		p.args.cgroup = uint64(cgroupFD)
	}
	// A forked child's lease pipe is a stand-in: a copy of its stdin, closed
	// on exec like the real one.
	leasePipe := &p.ops[len(files)].a[0]
	*leasePipe = uintptr(high[0])
	if p.canShare(flags) {
		r, err := p.startShared(leasePipe, above)
		if err != unix.EINVAL {
			runtime.KeepAlive(files)
			if err != nil {
				return 0, 0, err
			}
			return r, int(p.pidfd), nil
		}
		// A kernel that refuses (CLONE_CLEAR_SIGHAND is 5.5's): fork.
		*leasePipe = uintptr(high[0])
	}
	syscall.ForkLock.Lock()
	// No signal handler may run in the child: it has no Go runtime to run
	// it. The child restores this mask just before execve.
	all := ^uint64(0)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&p.s.sigmask)), 8, 0, 0)
	r, e := forkRun(&p.args, p.ops, p.s, p.sync)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.s.sigmask)), 0, 8, 0, 0)
	syscall.ForkLock.Unlock()
	runtime.KeepAlive(p)
	runtime.KeepAlive(files)
	if e != 0 {
		return 0, 0, fmt.Errorf("clone: %w", e)
	}
	return int(r), int(p.pidfd), nil
}

// canShare reports whether the child may share this process's memory:
// not where EnvPlainFork says not to, nor for a child that sets its
// oom_score_adj (the kernel sets it on every process that shares the
// child's memory), nor for a child in a new time namespace (before Linux
// 6.0, a child that shares its parent's memory does not enter the
// namespace, even at exec).
func (p *Program) canShare(flags uintptr) bool {
	_, plain := os.LookupEnv(EnvPlainFork)
	return canShare && !plain && !p.oomScoreAdj && flags&unix.CLONE_NEWTIME == 0
}

// startShared clones the child with CLONE_VM on a stack of its own, and
// hands what it uses to a lease. *leasePipe is set to the lease pipe's
// write end, a copy above the descriptors the child moves. It returns
// unix.EINVAL, alone, when the kernel refuses such a clone.
func (p *Program) startShared(leasePipe *uintptr, above int) (int, error) {
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("forkinit: lease pipe: %w", err)
	}
	w, err := unix.FcntlInt(uintptr(pipe[1]), unix.F_DUPFD_CLOEXEC, above)
	unix.Close(pipe[1])
	if err != nil {
		unix.Close(pipe[0])
		return 0, fmt.Errorf("forkinit: lease pipe: %w", err)
	}
	// The child holds the only other write end: this one closes now.
	defer unix.Close(w)
	*leasePipe = uintptr(w)
	stack := make([]byte, stackSize)
	lo := uintptr(unsafe.Pointer(&stack[0]))
	args := p.args
	p.args.flags |= unix.CLONE_VM | unix.CLONE_CLEAR_SIGHAND
	p.args.stack = uint64(lo)
	p.args.stackSize = uint64((lo+stackSize)&^15 - lo)
	syscall.ForkLock.Lock()
	all := ^uint64(0)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&p.s.sigmask)), 8, 0, 0)
	r, e := cloneVM(&p.args, unsafe.Sizeof(p.args), p.ops, p.s, p.sync)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.s.sigmask)), 0, 8, 0, 0)
	syscall.ForkLock.Unlock()
	if e != 0 {
		unix.Close(pipe[0])
		p.args = args
		if unix.Errno(e) == unix.EINVAL {
			return 0, unix.EINVAL
		}
		return 0, fmt.Errorf("clone: %w", unix.Errno(e))
	}
	p.shared = true
	l := &lease{prog: p, stack: stack, done: pipe[0]}
	runtime.SetFinalizer(l, (*lease).check)
	return int(r), nil
}

// A lease keeps what a child that shares this process's memory reads and
// writes — the program and its buffers, the child's stack — allocated
// until the child no longer uses this memory: until it has exec'd (it has
// then a memory of its own) or exited. No one holds a lease: when the
// collector finds it unreachable, check looks at done, the read end of a
// pipe whose only write end the child holds (lease pipe); and if the
// child still has it open, sets itself to run again at the next cycle.
// The kernel closes the child's descriptors on exec only once the child
// has left this memory (begin_new_exec: exec_mmap, then
// do_close_on_exec), and at exit likewise (do_exit: exit_mm, then
// exit_files), so a hang-up on done means the memory is free to go.
// (Processes forked while this one held the write end may hold copies
// until they exec or exit: that only makes the lease last longer.)
type lease struct {
	prog  *Program
	stack []byte
	done  int
}

func (l *lease) check() {
	fds := []unix.PollFd{{Fd: int32(l.done), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil || n != 1 || fds[0].Revents&unix.POLLHUP == 0 {
		runtime.SetFinalizer(l, (*lease).check)
		return
	}
	unix.Close(l.done)
}

// ptr returns the address of a buffer the program keeps alive.
func ptr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// atFDCWD is AT_FDCWD (-100) as a system call argument.
const atFDCWD = ^uintptr(99)
