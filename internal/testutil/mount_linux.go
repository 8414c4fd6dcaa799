package testutil

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth/internal/procfs"
)

// UnmountAll unmounts every mount point at or below dir, deepest first, so
// that dir can be removed. It is for cleaning up after engines (berth,
// podman) that mount overlays and bind mounts inside their roots.
func UnmountAll(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	points, err := procfs.MountsBelow(dir) // deepest first
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range append(points, dir) {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
