package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteTar writes the tree under dir to w as a tar stream. The stream is
// deterministic: entries come in lexical order of their paths, a directory
// before its contents, with numeric owners only and times truncated to the
// second, so the same tree always gives the same bytes. Hardlinked files are
// written once and linked after; holes are written as zeros. The root
// directory itself has no entry.
func WriteTar(ctx context.Context, w io.Writer, dir string) error {
	if err := writeTree(ctx, w, dir, false); err != nil {
		return fmt.Errorf("write tar of %s: %w", dir, err)
	}
	return nil
}

// Diff writes the overlayfs upper directory upper to w as an OCI layer, in
// the order and form of WriteTar: a character device 0/0 (an overlay
// whiteout) becomes a `.wh.` entry and a directory marked
// trusted.overlay.opaque=y gets a `.wh..wh..opq` entry after its own.
//
// The upper directory must come from a mount with redirect_dir and metacopy
// off, as the overlay snapshotter's are.
func Diff(ctx context.Context, w io.Writer, upper string) error {
	if err := writeTree(ctx, w, upper, true); err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type treeWriter struct {
	ctx     context.Context
	tw      *tar.Writer
	root    string
	overlay bool
	links   map[inode]string
	buf     []byte
}

func writeTree(c context.Context, w io.Writer, root string, overlay bool) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	t := &treeWriter{
		ctx:     c,
		tw:      tar.NewWriter(bw),
		root:    root,
		overlay: overlay,
		links:   make(map[inode]string),
		buf:     make([]byte, readBufSize),
	}
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &os.PathError{Op: "open", Path: root, Err: unix.ENOTDIR}
	}
	if err := t.dir(""); err != nil {
		return err
	}
	if err := t.tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// dir writes the contents of the directory rel (relative to the root).
func (t *treeWriter) dir(rel string) error {
	f, err := os.Open(filepath.Join(t.root, rel))
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if err := t.entry(filepath.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

func (t *treeWriter) entry(rel string) error {
	full := filepath.Join(t.root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()).Truncate(time.Second),
	}
	format := st.Mode & unix.S_IFMT
	if t.overlay && format == unix.S_IFCHR && st.Rdev == 0 {
		dir, base := filepath.Split(rel)
		hdr.Name = dir + whiteoutPrefix + base
		hdr.Typeflag = tar.TypeReg
		hdr.Mode, hdr.Uid, hdr.Gid = 0, 0, 0
		return t.tw.WriteHeader(hdr)
	}
	xattrs, err := listXattrs(full)
	if err != nil {
		return err
	}
	opaque := false
	for name, value := range xattrs {
		if strings.HasPrefix(name, "trusted.overlay.") {
			opaque = opaque || (name == overlayOpaqueXattr && value == "y")
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string)
		}
		hdr.PAXRecords[paxXattr+name] = value
	}

	if format != unix.S_IFDIR && st.Nlink > 1 {
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := t.links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.PAXRecords = nil
			return t.tw.WriteHeader(hdr)
		}
		t.links[key] = rel
	}

	switch format {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if t.overlay && opaque {
			err := t.tw.WriteHeader(&tar.Header{
				Name:     filepath.Join(rel, whiteoutOpaque),
				Typeflag: tar.TypeReg,
				ModTime:  hdr.ModTime,
			})
			if err != nil {
				return err
			}
		}
		return t.dir(rel)
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(full)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(t.tw, io.LimitReader(f, st.Size), t.buf)
		if err != nil {
			return fmt.Errorf("copy %s: %w", full, err)
		}
		if n != st.Size {
			return fmt.Errorf("copy %s: file shrank while being read", full)
		}
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if format == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets have no place in a layer
	}
	return t.tw.WriteHeader(hdr)
}

// listXattrs returns the extended attributes of path, not following a
// symlink.
func listXattrs(path string) (map[string]string, error) {
	var buf [4096]byte
	n, err := unix.Llistxattr(path, buf[:])
	if err == unix.ERANGE {
		sz, err2 := unix.Llistxattr(path, nil)
		if err2 != nil {
			return nil, &os.PathError{Op: "listxattr", Path: path, Err: err2}
		}
		big := make([]byte, sz)
		n, err = unix.Llistxattr(path, big)
		if err == nil {
			return getXattrs(path, big[:n])
		}
	}
	if err == unix.ENOTSUP {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	return getXattrs(path, buf[:n])
}

func getXattrs(path string, list []byte) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string]string)
	for _, name := range strings.Split(strings.TrimSuffix(string(list), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		sz, err := unix.Lgetxattr(path, name, nil)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		value := make([]byte, sz)
		sz, err = unix.Lgetxattr(path, name, value)
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		m[name] = string(value[:sz])
	}
	return m, nil
}
