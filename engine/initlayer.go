package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

// initFiles are the mount targets every container needs in its root: the
// runtime binds the container's own copies on them. An image without
// them would have them made in each container's writable layer at each
// first start (a copy-up of /etc and three new files on the data root's
// disk), so they come from an init layer instead.
var initFiles = []string{"etc/hosts", "etc/hostname", "etc/resolv.conf"}

// initLayer returns the layer a container of the image whose top layer is
// parent is made on: parent itself when the image has every init file (or
// when the driver copies whole trees anyway), or else berth's init layer
// for that image, made the first time and shared by all its containers. It
// holds the missing files, empty, and /etc with the image's attributes, and
// is what Docker's per-container "-init" layer is, once per image. Like
// Docker's, it is not part of the container's changes (diff, commit), and
// garbage collection removes it once no container uses it.
func (e *Engine) initLayer(ctx context.Context, parent digest.Digest) (digest.Digest, error) {
	if e.snaps.Driver() != "overlay" {
		return parent, nil
	}
	id := digest.FromString("berth init layer v1 " + parent.String())
	if _, err := e.snaps.Stat(ctx, id); err == nil {
		return id, nil
	}
	etc, err := e.snaps.Lookup(ctx, parent, "etc")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	case !etc.IsDir():
		return parent, nil // the runtime deals with it (or fails) as without
	}
	var missing []string
	for _, f := range initFiles {
		if etc == nil {
			missing = append(missing, f)
			continue
		}
		if _, err := e.snaps.Lookup(ctx, parent, f); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, f)
		} else if err != nil {
			return "", err
		}
	}
	if len(missing) == 0 {
		return parent, nil
	}
	_, err = e.snaps.CreateLayer(ctx, id, parent, func(dir string) error {
		return fillInitLayer(dir, etc, missing)
	})
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("init layer of %s: %w", parent, err)
	}
	return id, nil
}

// fillInitLayer makes etc (with the attributes of the image's, if it has
// one) and the missing files in dir.
func fillInitLayer(dir string, etc fs.FileInfo, missing []string) error {
	etcDir := filepath.Join(dir, "etc")
	mode := fs.FileMode(0o755)
	if etc != nil {
		mode = etc.Mode().Perm() | etc.Mode()&(fs.ModeSetgid|fs.ModeSticky)
	}
	if err := os.Mkdir(etcDir, 0o700); err != nil {
		return err
	}
	for _, f := range missing {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return err
		}
	}
	// The directory's attributes last: its mode may forbid writing in it,
	// and its times are the image's.
	if err := os.Chmod(etcDir, mode); err != nil {
		return err
	}
	if etc == nil {
		return nil
	}
	if st, ok := etc.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(etcDir, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return os.Chtimes(etcDir, etc.ModTime(), etc.ModTime())
}
