package registry

import (
	"fmt"
	"syscall"
)

// mountTmpfs mounts a tmpfs on dir, large enough for a row's images in
// both registries (pages are used as files are written, not up front).
func mountTmpfs(dir string) error {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=50%,mode=0700"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

func unmount(dir string) error {
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
