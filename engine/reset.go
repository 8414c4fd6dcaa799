package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/procfs"
	"github.com/berth-dev/berth/monitor"
)

// Reset puts the data root and the run root back to nothing, as podman
// system reset does: every container (killed if running), every network
// on the host (bridges, firewall rules, resolvers — the default network's
// too), and then every image, layer, volume and cache with the roots'
// contents. The monitor, left with nothing to watch, is asked to exit and
// waited for. Run it with nothing else using the roots.
func (e *Engine) Reset(ctx context.Context) error {
	var errs []error
	list, err := e.Containers(ctx, ContainerListOptions{All: true})
	if err != nil {
		errs = append(errs, err)
	}
	for _, c := range list {
		if err := e.RemoveContainer(ctx, c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if nm, err := e.networkManager(); err != nil {
		errs = append(errs, err)
	} else if err := nm.Reset(ctx); err != nil {
		errs = append(errs, err)
	}
	// The monitor goes before its run root does: one left running would
	// serve, and on exit remove, a socket path a new monitor may use.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := monitor.Stop(sctx, e.runRoot); err != nil {
		errs = append(errs, err)
	}
	cancel()
	for _, dir := range []string{e.root, e.runRoot} {
		if err := emptyDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	// The run root's own tmpfs (see prepareRunRoot) goes too.
	if onTmpfs(e.runRoot) {
		unix.Unmount(e.runRoot, unix.MNT_DETACH)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("system reset: %w", err)
	}
	return nil
}

// emptyDir removes what dir holds (not dir itself). Whatever is mounted
// below it is unmounted first, deepest first; should one refuse, nothing is
// removed, so that no removal ever reaches into a mounted file system (a
// bind mount of a host directory).
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	points, err := procfs.MountsBelow(dir)
	if err != nil {
		return err
	}
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	var errs []error
	for _, ent := range ents {
		if err := os.RemoveAll(filepath.Join(dir, ent.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
