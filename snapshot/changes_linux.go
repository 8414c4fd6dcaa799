package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Changes returns what the active snapshot key changed over its parent, as
// an overlay upper directory holds them. With the overlay driver that is
// the snapshot's own upper directory; the native driver keeps full copies,
// so it compares the snapshot with its parent and builds such a directory
// (hard links to what was added or changed, whiteouts for what was
// deleted) for Release to remove.
func (s *store) Changes(ctx context.Context, key string) (Changes, error) {
	ai, err := s.readActive(key)
	if err != nil {
		return Changes{}, err
	}
	chain, err := s.chain(ai.Parent)
	if err != nil {
		return Changes{}, fmt.Errorf("changes of %q: %w", key, err)
	}
	dir := s.activeDir(key)
	if _, ok := s.d.(nativeDriver); !ok {
		return Changes{Upper: s.d.upperDir(dir), Lowers: chain, Release: func() {}}, nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "changes-")
	if err != nil {
		return Changes{}, fmt.Errorf("changes of %q: %w", key, err)
	}
	upper := filepath.Join(tmp, "upper")
	d := &differ{ctx: ctx, active: s.d.upperDir(dir), upper: upper}
	if len(chain) > 0 {
		d.parent = chain[0] // a native layer is the whole tree
	}
	err = d.diffDir(".")
	if err == nil {
		err = d.ensureDir(".")
	}
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		os.RemoveAll(tmp)
		return Changes{}, fmt.Errorf("changes of %q: %w", key, err)
	}
	return Changes{Upper: upper, Lowers: chain[:min(len(chain), 1)], Release: func() { os.RemoveAll(tmp) }}, nil
}

// differ compares a native snapshot's tree (active) with its parent's and
// writes the difference into upper as overlayfs would have.
type differ struct {
	ctx                   context.Context
	active, parent, upper string
	made                  []string // directories made in upper, parents first
	madeSet               map[string]bool
}

// diffDir compares the directory rel, present in both trees.
func (d *differ) diffDir(rel string) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	names, err := readNames(filepath.Join(d.active, rel))
	if err != nil {
		return err
	}
	var before map[string]bool
	if d.parent != "" {
		pn, err := readNames(filepath.Join(d.parent, rel))
		if err != nil {
			return err
		}
		before = make(map[string]bool, len(pn))
		for _, n := range pn {
			before[n] = true
		}
	}
	for _, n := range names {
		p := filepath.Join(rel, n)
		delete(before, n)
		var ast, pst unix.Stat_t
		if err := unix.Lstat(filepath.Join(d.active, p), &ast); err != nil {
			return &os.PathError{Op: "lstat", Path: filepath.Join(d.active, p), Err: err}
		}
		if d.parent == "" || unix.Lstat(filepath.Join(d.parent, p), &pst) != nil {
			if err := d.add(p, &ast); err != nil {
				return err
			}
			continue
		}
		isDir := ast.Mode&unix.S_IFMT == unix.S_IFDIR
		if isDir && pst.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := d.diffDir(p); err != nil {
				return err
			}
			if !d.madeSet[p] && d.differs(p, &ast, &pst) {
				if err := d.ensureDir(p); err != nil {
					return err
				}
			}
			continue
		}
		if d.differs(p, &ast, &pst) {
			if err := d.add(p, &ast); err != nil {
				return err
			}
		}
	}
	for n := range before {
		if err := d.ensureDir(rel); err != nil {
			return err
		}
		if err := unix.Mknod(filepath.Join(d.upper, rel, n), unix.S_IFCHR, 0); err != nil {
			return &os.PathError{Op: "mknod whiteout", Path: filepath.Join(rel, n), Err: err}
		}
	}
	return nil
}

// add puts the active tree's p (and, for a directory, all below it) into
// upper.
func (d *differ) add(p string, st *unix.Stat_t) error {
	if err := d.ensureDir(filepath.Dir(p)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return os.Link(filepath.Join(d.active, p), filepath.Join(d.upper, p))
	}
	if err := d.ensureDir(p); err != nil {
		return err
	}
	names, err := readNames(filepath.Join(d.active, p))
	if err != nil {
		return err
	}
	for _, n := range names {
		var cst unix.Stat_t
		c := filepath.Join(p, n)
		if err := unix.Lstat(filepath.Join(d.active, c), &cst); err != nil {
			return &os.PathError{Op: "lstat", Path: filepath.Join(d.active, c), Err: err}
		}
		if err := d.add(c, &cst); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir makes the directory rel (and its parents) in upper; finish
// gives them their metadata once their contents are in.
func (d *differ) ensureDir(rel string) error {
	if d.madeSet[rel] {
		return nil
	}
	if rel != "." {
		if err := d.ensureDir(filepath.Dir(rel)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(d.upper, rel), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if d.madeSet == nil {
		d.madeSet = map[string]bool{}
	}
	d.madeSet[rel] = true
	d.made = append(d.made, rel)
	return nil
}

// finish copies the active tree's owners, modes, attributes and times
// onto the directories made in upper, deepest first (so that no later
// change moves a time already set).
func (d *differ) finish() error {
	for i := len(d.made) - 1; i >= 0; i-- {
		rel := d.made[i]
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(d.active, rel), &st); err != nil {
			return &os.PathError{Op: "lstat", Path: filepath.Join(d.active, rel), Err: err}
		}
		if err := copyMetadata(filepath.Join(d.active, rel), filepath.Join(d.upper, rel), &st); err != nil {
			return err
		}
	}
	return nil
}

// differs reports whether p changed between the parent (pst) and the
// active tree (ast), as Docker's changes of a copied tree are found: type,
// mode, owner, device, modification time, size (not of directories), link
// target and file capabilities.
func (d *differ) differs(p string, ast, pst *unix.Stat_t) bool {
	if ast.Mode != pst.Mode || ast.Uid != pst.Uid || ast.Gid != pst.Gid || ast.Rdev != pst.Rdev || ast.Mtim != pst.Mtim {
		return true
	}
	switch ast.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return false
	case unix.S_IFLNK:
		a, _ := os.Readlink(filepath.Join(d.active, p))
		b, _ := os.Readlink(filepath.Join(d.parent, p))
		return a != b
	}
	if ast.Size != pst.Size {
		return true
	}
	return !bytes.Equal(capability(filepath.Join(d.active, p)), capability(filepath.Join(d.parent, p)))
}

func capability(path string) []byte {
	b := make([]byte, 128)
	n, err := unix.Lgetxattr(path, "security.capability", b)
	if err != nil {
		return nil
	}
	return b[:n]
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
