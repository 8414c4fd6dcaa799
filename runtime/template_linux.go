package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/procfs"
)

// A MountTemplate is a mount namespace that containers' mount namespaces
// are copied from instead of the host's, and the thread that lives in it.
//
// A new mount namespace starts as a copy of its creator's, every mount of
// it, and the container's init then detaches all of them but its root
// (pivot_root). Both cost in proportion to the mounts: a host running many
// containers holds two of its own for each (its root, its network
// namespace's file), so each container's start cost more than the last
// (at 1,000 containers, clone and pivot alone took several milliseconds).
// The template is the host's mounts as they were when it was made, less
// those of containers (under prune), and private: what is mounted in the
// host since does not reach it, so a container's start costs the same
// whatever runs.
//
// A container's root is mounted in the host, where the template cannot
// see it: Create gives the init a detached copy of it (open_tree), which
// the init attaches where its root is expected in its new namespace
// (move_mount) before anything else. Only containers whose every bind
// mount comes from under one of the template's roots (the data and run
// roots), on the very mount the root is on, are created from it: what the
// template shows there is what the host does. Others (a bind of any other
// host path, or of a mount made under a root since), and those that join
// namespaces other than network, IPC and UTS ones, are created from the
// host's namespace as before.
type MountTemplate struct {
	// roots maps each root to the ID of the mount it is on (in the
	// creator's namespace): a bind source counts as under a root only
	// on that same mount, not on one made under the root since.
	roots map[string]uint64
	reqs  chan func()
	// ns holds the thread's own network, IPC and UTS namespaces, to go
	// back to after a clone that joined a container's.
	ns map[int]*os.File

	mu   sync.Mutex // one clone at a time
	gone bool       // the thread could not come back to its namespaces
}

// NewMountTemplate makes the template: a thread, locked for good, in a new
// mount namespace in which every mount under prune is detached. roots are
// the directories under which a container's bind mounts must lie to be
// created from it.
func NewMountTemplate(prune string, roots ...string) (*MountTemplate, error) {
	t := &MountTemplate{roots: map[string]uint64{}, reqs: make(chan func()), ns: map[int]*os.File{}}
	for _, r := range roots {
		id, err := mountID(r)
		if err != nil {
			return nil, fmt.Errorf("mount namespace template: %w", err)
		}
		t.roots[filepath.Clean(r)] = id
	}
	errc := make(chan error, 1)
	serve := func() {
		if err := t.enter(prune); err != nil {
			errc <- err
			return // the thread ends with its goroutine, locked
		}
		errc <- nil
		for f := range t.reqs {
			f()
			if t.gone {
				return // retired, with its thread (see run)
			}
		}
	}
	// The thread's mount namespace and file system information are its
	// own: it ends with the process.
	goLockedForGood(serve)
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("mount namespace template: %w", err)
	}
	return t, nil
}

func (t *MountTemplate) enter(prune string) error {
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	var points []string
	if prune != "" {
		var err error
		if points, err = procfs.ThreadMountsBelow(prune); err != nil {
			return err
		}
	}
	for _, p := range points { // deepest first
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("detach %s: %w", p, err)
		}
	}
	for flag, name := range map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWUTS: "uts"} {
		f, err := os.Open("/proc/thread-self/ns/" + name)
		if err != nil {
			return err
		}
		t.ns[flag] = f
	}
	return nil
}

// goLockedForGood runs f on a new goroutine locked to a thread that ends
// with it, for f changes what the thread is (its namespaces). Never the
// main thread: /proc/self shows every thread what the main thread is, and
// the Go runtime parks that thread for good rather than end it.
func goLockedForGood(f func()) {
	go func() {
		goruntime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			f()
			return
		}
		// Held, the main thread cannot be the next goroutine's.
		locked := make(chan struct{})
		go func() {
			goruntime.LockOSThread()
			close(locked)
			f()
		}()
		<-locked
		goruntime.UnlockOSThread()
	}()
}

// suits reports whether a container of spec, joining the namespaces in
// join, can be created from the template.
func (t *MountTemplate) suits(spec *specs.Spec, ns *nsPlan) bool {
	if t == nil || ns.flags&unix.CLONE_NEWNS == 0 || ns.mnt != nil || ns.flags&unix.CLONE_NEWUSER != 0 {
		return false
	}
	for _, j := range ns.join {
		if t.ns[j.flag] == nil {
			return false
		}
	}
	for _, m := range spec.Mounts {
		if !isBindMount(m) {
			continue
		}
		if !t.covers(m.Source) {
			return false
		}
	}
	return true
}

func (t *MountTemplate) covers(path string) bool {
	path = filepath.Clean(path)
	for r, id := range t.roots {
		if path == r || strings.HasPrefix(path, r+"/") {
			got, err := mountID(path)
			return err == nil && got == id
		}
	}
	return false
}

// mountID returns the ID of the mount path is on (not following a last
// symbolic link).
func mountID(path string) (uint64, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		return 0, fmt.Errorf("statx %s: %w", path, err)
	}
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return 0, fmt.Errorf("statx %s: no mount ID", path)
	}
	return st.Mnt_id, nil
}

// run runs f on the template's thread, having joined the namespaces in
// join (a clone there copies the template's mount namespace), and comes
// back to the thread's own afterwards. errTemplateGone means nothing ran:
// the caller clones from its own thread instead. A thread that cannot come
// back is retired, and the template with it.
func (t *MountTemplate) run(join []nsJoin, f func()) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone {
		return errTemplateGone
	}
	done := make(chan error, 1)
	t.reqs <- func() {
		for i, j := range join {
			if err := unix.Setns(int(j.f.Fd()), j.flag); err != nil {
				t.gone = !t.restore(join[:i])
				done <- fmt.Errorf("join %s namespace %s: %w", j.typ, j.f.Name(), err)
				return
			}
		}
		f()
		t.gone = !t.restore(join)
		done <- nil
	}
	return <-done
}

var errTemplateGone = errors.New("mount namespace template gone")

func (t *MountTemplate) restore(join []nsJoin) bool {
	for _, j := range join {
		if err := unix.Setns(int(t.ns[j.flag].Fd()), j.flag); err != nil {
			return false
		}
	}
	return true
}
