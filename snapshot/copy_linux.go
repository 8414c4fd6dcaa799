package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// copier copies a tree as the native driver needs it: owners, modes, times,
// extended attributes, hardlinks, symlinks, devices and holes preserved. It
// never follows a symlink of the tree.
type copier struct {
	ctx   context.Context
	links map[[2]uint64]string // inode of the source -> first copy
}

// copyTree copies the tree under src into dst, which must not exist.
func copyTree(ctx context.Context, src, dst string) error {
	c := &copier{ctx: ctx, links: make(map[[2]uint64]string)}
	if err := c.copy(src, dst); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

func (c *copier) copy(src, dst string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	format := st.Mode & unix.S_IFMT
	if format != unix.S_IFDIR && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok {
			return os.Link(first, dst)
		}
		c.links[key] = dst
	}
	switch format {
	case unix.S_IFDIR:
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: dst, Err: err}
		}
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := c.copy(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		if err := c.copyFile(src, dst, st.Size); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	default:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	}
	return copyMetadata(src, dst, &st)
}

// copyMetadata gives dst the owner, mode, extended attributes and times of
// src, in the order that keeps setuid bits and file capabilities (which
// chown clears).
func copyMetadata(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: dst, Err: err}
	}
	symlink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if !symlink {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	if err := copyXattrs(src, dst, symlink); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}

func copyXattrs(src, dst string, symlink bool) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size == 0 {
		if err == nil || errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return &os.PathError{Op: "listxattr", Path: src, Err: err}
	}
	list := make([]byte, size)
	size, err = unix.Llistxattr(src, list)
	if err != nil {
		return &os.PathError{Op: "listxattr", Path: src, Err: err}
	}
	for _, name := range strings.Split(strings.TrimSuffix(string(list[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return &os.PathError{Op: "getxattr " + name, Path: src, Err: err}
		}
		value := make([]byte, n)
		n, err = unix.Lgetxattr(src, name, value)
		if err != nil {
			return &os.PathError{Op: "getxattr " + name, Path: src, Err: err}
		}
		err = unix.Lsetxattr(dst, name, value[:n], 0)
		if err != nil && !(symlink && errors.Is(err, unix.EPERM)) {
			return &os.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

// copyFile copies a regular file: a reflink where the filesystem can, and
// otherwise its data extents only, so holes stay holes.
func (c *copier) copyFile(src, dst string, size int64) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if size == 0 {
		return nil
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return nil
	}
	ifd, ofd := int(in.Fd()), int(out.Fd())
	var off int64
	for off < size {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return &os.PathError{Op: "seek", Path: src, Err: err}
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return &os.PathError{Op: "seek", Path: src, Err: err}
		}
		for data < hole {
			roff, woff := data, data
			n, err := unix.CopyFileRange(ifd, &roff, ofd, &woff, int(hole-data), 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return &os.PathError{Op: "copy_file_range", Path: src, Err: err}
			}
			if n == 0 {
				return fmt.Errorf("copy %s: file shrank while being copied", src)
			}
			data += int64(n)
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	return nil
}

// diskUsage returns the disk space the tree under dir uses, counting each
// hardlinked inode once.
func diskUsage(ctx context.Context, dir string) (int64, error) {
	seen := make(map[[2]uint64]struct{})
	var total int64
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if _, ok := seen[key]; ok {
				return nil
			}
			seen[key] = struct{}{}
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("disk usage of %s: %w", dir, err)
	}
	return total, nil
}
