package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
)

// CopyOptions are `cp`'s flags.
type CopyOptions struct {
	// Archive keeps the owners of what is copied; otherwise what lands in
	// the container belongs to its root, and what lands on the host to the
	// calling user.
	Archive bool
	// FollowLink copies what the source, a symlink, points to.
	FollowLink bool
}

// withRoot calls fn with the host path of the container's root file
// system. If the container runs, that is the one its monitor mounted, or
// with live the root its init sees (/proc/PID/root: with its volumes,
// binds and tmpfs mounts, as docker cp sees them); with pause the
// container is frozen while fn runs, so that nothing in it moves under a
// copy. A container that does not run has its snapshot mounted for the
// time of fn in a private directory of the run root.
func (e *Engine) withRoot(ctx context.Context, c *container.Container, pause, live bool, fn func(root string) error) error {
	if c.State.Running {
		if pause && !c.State.Paused {
			if rt, err := e.ociRuntimeFor(c.HostConfig.Runtime); err == nil && rt.Pause(ctx, c.ID) == nil {
				defer rt.Resume(context.WithoutCancel(ctx), c.ID)
			}
		}
		if live {
			return fn("/proc/" + strconv.Itoa(c.State.Pid) + "/root")
		}
		return fn(filepath.Join(e.runDir(c.ID), "rootfs"))
	}
	mounts, err := e.snaps.Mounts(ctx, c.Berth.RootfsKey)
	if err != nil {
		return fmt.Errorf("container %s: root: %w", c.ID[:12], err)
	}
	base := filepath.Join(e.runRoot, "mnt")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(base, c.ID[:12]+"-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return fmt.Errorf("mount container %s root: %w", c.ID[:12], err)
	}
	defer snapshot.Unmount(dir)
	return fn(dir)
}

// resolveParentInRoot resolves p inside root like resolveInRoot but
// leaves its last element alone (a symlink there is the link itself).
func resolveParentInRoot(root, p string) (string, error) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		return root, nil
	}
	dir, err := resolveInRoot(root, path.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(clean)), nil
}

// copySource is what cp copies from: a host path, resolved.
type copySource struct {
	path         string // the host path of the source
	isDir        bool
	contentsOnly bool   // the source ended in "/.": copy what is in the directory
	base         string // its name, for copies into a directory
}

// copyPlan is where a copy lands: a directory to unpack into and the name
// the source takes there ("" for a directory's contents).
type copyPlan struct {
	dir, name string
}

// planCopy applies Docker's rules to a destination whose host path is dst
// (resolved; it may not exist) and the source: into an existing directory
// under the source's own name, over an existing file, or as a new entry.
func planCopy(dst string, wantDir bool, src copySource) (copyPlan, error) {
	fi, err := os.Stat(dst)
	switch {
	case err == nil && fi.IsDir():
		if src.contentsOnly {
			return copyPlan{dir: dst}, nil
		}
		return copyPlan{dir: dst, name: src.base}, nil
	case err == nil:
		if src.isDir {
			return copyPlan{}, errdefs.InvalidArgument("cannot overwrite non-directory %q with directory", dst)
		}
	case errors.Is(err, fs.ErrNotExist):
		if wantDir && !src.isDir {
			return copyPlan{}, errdefs.NotFound("no such directory: %s", dst)
		}
	default:
		return copyPlan{}, err
	}
	parent := filepath.Dir(dst)
	if pfi, err := os.Stat(parent); err != nil || !pfi.IsDir() {
		return copyPlan{}, errdefs.NotFound("no such directory: %s", parent)
	}
	return copyPlan{dir: parent, name: filepath.Base(dst)}, nil
}

// CopyFromContainer copies srcPath of the container to the host path dst,
// or, when dst is "-", writes it to w as a tar stream, as docker cp does.
func (e *Engine) CopyFromContainer(ctx context.Context, ref, srcPath, dst string, w io.Writer, opts CopyOptions) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	return e.withRoot(ctx, c, true, true, func(root string) error {
		src, err := containerSource(root, srcPath, opts.FollowLink)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errdefs.NotFound("Could not find the file %s in container %s", srcPath, c.DisplayName())
			}
			return err
		}
		if dst == "-" {
			name := src.base
			if src.contentsOnly {
				name = ""
			}
			return writeCopyTar(ctx, w, src, name, nil)
		}
		abs, err := filepath.Abs(dst)
		if err != nil {
			return err
		}
		plan, err := planCopy(abs, strings.HasSuffix(dst, "/"), src)
		if err != nil {
			return err
		}
		var owner *[2]int
		if !opts.Archive {
			owner = &[2]int{os.Getuid(), os.Getgid()}
		}
		return unpackCopy(ctx, plan, src, owner)
	})
}

// containerSource resolves a cp source inside the container's root.
func containerSource(root, p string, follow bool) (copySource, error) {
	src := copySource{contentsOnly: strings.HasSuffix(p, "/.")}
	var err error
	if follow || src.contentsOnly || strings.HasSuffix(p, "/") {
		src.path, err = resolveInRoot(root, p)
	} else {
		src.path, err = resolveParentInRoot(root, p)
	}
	if err != nil {
		return src, err
	}
	fi, err := os.Lstat(src.path)
	if err != nil {
		return src, err
	}
	src.isDir = fi.IsDir()
	src.base = path.Base(path.Clean("/" + p))
	if src.base == "/" {
		src.base = "."
		src.contentsOnly = src.isDir
	}
	return src, nil
}

// CopyToContainer copies the host path src (or, when src is "-", the tar
// stream read from r) to dstPath in the container, as docker cp does.
// Writes go through archive.Apply, which refuses any entry that would
// land outside the directory unpacked into.
func (e *Engine) CopyToContainer(ctx context.Context, ref, src, dstPath string, r io.Reader, opts CopyOptions) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	if c.HostConfig.ReadonlyRootfs {
		return errdefs.Conflict("container rootfs is marked read-only")
	}
	var source copySource
	if src != "-" {
		source.contentsOnly = strings.HasSuffix(src, "/.")
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		source.path = abs
		var fi fs.FileInfo
		if opts.FollowLink {
			fi, err = os.Stat(abs)
		} else {
			fi, err = os.Lstat(abs)
		}
		if err != nil {
			return errdefs.NotFound("lstat %s: no such file or directory", abs)
		}
		source.isDir, source.base = fi.IsDir(), filepath.Base(abs)
		if opts.FollowLink && fi.Mode()&fs.ModeSymlink == 0 {
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				source.path = real
			}
		}
	}
	return e.withRoot(ctx, c, true, true, func(root string) error {
		notFound := func() error {
			return errdefs.NotFound("Could not find the file %s in container %s", dstPath, c.DisplayName())
		}
		if src == "-" {
			dir, err := resolveInRoot(root, dstPath)
			if err != nil {
				return notFound()
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return errdefs.InvalidArgument("destination \"%s:%s\" must be a directory", c.DisplayName(), dstPath)
			}
			_, err = archive.Apply(ctx, dir, r, archive.ApplyOptions{Whiteouts: archive.WhiteoutNone})
			return err
		}
		dst, err := resolveInRoot(root, dstPath)
		if errors.Is(err, fs.ErrNotExist) {
			// A new entry: its parent must exist.
			dst, err = resolveParentInRoot(root, dstPath)
		}
		if err != nil {
			return notFound()
		}
		plan, err := planCopy(dst, strings.HasSuffix(dstPath, "/"), source)
		if errdefs.IsNotFound(err) {
			return notFound()
		} else if err != nil {
			return err
		}
		var owner *[2]int
		if !opts.Archive {
			owner = &[2]int{0, 0}
		}
		return unpackCopy(ctx, plan, source, owner)
	})
}

// unpackCopy writes src into the plan's directory through archive.Apply.
func unpackCopy(ctx context.Context, plan copyPlan, src copySource, owner *[2]int) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeCopyTar(ctx, pw, src, plan.name, owner)) }()
	_, err := archive.Apply(ctx, plan.dir, pr, archive.ApplyOptions{Whiteouts: archive.WhiteoutNone})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src.base, err)
	}
	return nil
}

// writeCopyTar writes src as a tar stream whose top entry is name (or,
// with name "", the directory's contents), owned by owner if it is not
// nil.
func writeCopyTar(ctx context.Context, w io.Writer, src copySource, name string, owner *[2]int) error {
	tw := tar.NewWriter(w)
	fix := func(h *tar.Header) {
		if owner != nil {
			h.Uid, h.Gid = owner[0], owner[1]
			h.Uname, h.Gname = "", ""
		}
	}
	if !src.isDir {
		if err := writeOne(tw, src.path, name, fix); err != nil {
			return err
		}
		return tw.Close()
	}
	if name != "" {
		if err := writeOne(tw, src.path, name, fix); err != nil {
			return err
		}
	}
	// The tree below: archive.WriteTar's entries, renamed under name.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.WriteTar(ctx, pw, src.path)) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		h.Name = path.Join(name, h.Name)
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if h.Typeflag == tar.TypeLink {
			h.Linkname = path.Join(name, h.Linkname)
		}
		fix(h)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeOne writes the entry for one file, directory or link.
func writeOne(tw *tar.Writer, p, name string, fix func(*tar.Header)) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	h.Name = name
	if fi.IsDir() {
		h.Name += "/"
	}
	h.Uname, h.Gname = "", ""
	fix(h)
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// Export writes the container's whole file system to w as a tar stream.
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return err
	}
	return e.withRoot(ctx, c, false, false, func(root string) error {
		return archive.WriteTar(ctx, w, root)
	})
}
