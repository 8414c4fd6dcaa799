package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsutil"
)

// prepareRunRoot makes the run root a tmpfs of its own when it is new (or
// empty) and not on one already, as /run is on most hosts: what it holds
// (the monitor's socket and locks, bundles, runtime state, network
// endpoints) must not outlive a boot, and a container's start and exit
// create and delete a score of files there, which on a disk file system
// cost inode allocations and writes (on an ext4 without a journal, whose
// allocator skips every inode deleted in the last 30 s, far more). A run
// root that already holds state on disk is left as it is (a berth that
// has been running there keeps running), and so is one berth may not
// mount (without CAP_SYS_ADMIN).
func prepareRunRoot(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if onTmpfs(dir) {
		return nil
	}
	// Two berths opening a new run root at once must not stack two mounts:
	// the check and the mount go under a lock beside the run root.
	l, err := fsutil.LockFile(filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".mount.lock"))
	if err != nil {
		return nil // a read-only parent: leave the run root on disk
	}
	defer l.Unlock()
	if onTmpfs(dir) {
		return nil
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		return nil
	}
	err = unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0711")
	if errors.Is(err, unix.EPERM) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mount a tmpfs on the run root %s: %w", dir, err)
	}
	return nil
}

func onTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC)
}
