package build

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// owner is a --chown, resolved to numbers.
type owner struct{ uid, gid int }

// copyOpts are a COPY's or an ADD's flags.
type copyOpts struct {
	chown *owner
	chmod *fs.FileMode
}

// resolveOwner reads `user[:group]` (names or numbers) against the
// destination root's /etc/passwd and /etc/group. A user without a group
// gives the group of the same number, as Docker does.
func resolveOwner(root, spec string) (*owner, error) {
	if spec == "" {
		return nil, nil
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	uid, err := lookupID(root, "/etc/passwd", u)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid --chown %q: unable to find user %s", spec, u)
	}
	gid := uid
	if hasGroup {
		if gid, err = lookupID(root, "/etc/group", g); err != nil {
			return nil, errdefs.InvalidArgument("invalid --chown %q: unable to find group %s", spec, g)
		}
	}
	return &owner{uid, gid}, nil
}

// lookupID finds name (or takes it as a number) in a passwd-like file of
// root: the third field of the line whose first field is name.
func lookupID(root, file, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	p, err := securejoin.SecureJoin(root, file)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == name {
			return strconv.Atoi(fields[2])
		}
	}
	return 0, errdefs.NotFound("%s: no %s", file, name)
}

// parseChmod reads a --chmod in octal.
func parseChmod(s string) (*fs.FileMode, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return nil, errdefs.InvalidArgument("invalid --chmod %q: want an octal mode", s)
	}
	m := unixToFileMode(uint32(n))
	return &m, nil
}

func unixToFileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// copier copies sources into the root file system of a step.
type copier struct {
	root string // the destination root, mounted
	src  *source
	opts copyOpts
}

// mkdirAll makes the directory p (inside root) and its missing parents,
// owned by the --chown user or root, and returns its host path.
func (c *copier) mkdirAll(p string) (string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return c.root, nil
	}
	if _, err := c.mkdirAll(path.Dir(p)); err != nil {
		return "", err
	}
	host, err := securejoin.SecureJoin(c.root, p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(host)
	if err == nil {
		if !fi.IsDir() {
			return "", errdefs.InvalidArgument("%s is not a directory", p)
		}
		return host, nil
	}
	if err := os.Mkdir(host, 0o755); err != nil {
		return "", err
	}
	uid, gid := 0, 0
	if c.opts.chown != nil {
		uid, gid = c.opts.chown.uid, c.opts.chown.gid
	}
	if err := os.Lchown(host, uid, gid); err != nil {
		return "", err
	}
	return host, nil
}

// copyAll copies the matched sources rels to dest (absolute in the
// image), with Docker's rules: a directory's contents go into dest; a
// file goes into dest when dest ends with a slash or is a directory, and
// becomes dest otherwise. Several sources need a directory.
func (c *copier) copyAll(rels []string, dest string, many bool) error {
	destDir := strings.HasSuffix(dest, "/") || many
	if !destDir {
		if host, err := securejoin.SecureJoin(c.root, dest); err == nil {
			if fi, err := os.Stat(host); err == nil && fi.IsDir() {
				destDir = true
			}
		}
	}
	if many && !strings.HasSuffix(dest, "/") {
		return errdefs.InvalidArgument("When using COPY with more than one source file, the destination must be a directory and end with a /")
	}
	for _, rel := range rels {
		srcPath, err := securejoin.SecureJoin(c.src.root, rel)
		if err != nil {
			return err
		}
		fi, err := os.Stat(srcPath)
		if err != nil {
			return fmt.Errorf("%s: %w", c.src.describe(), err)
		}
		if fi.IsDir() {
			dir, err := c.mkdirAll(dest)
			if err != nil {
				return err
			}
			if err := c.copyTree(srcPath, rel, dir); err != nil {
				return err
			}
			continue
		}
		target := dest
		if destDir {
			target = path.Join(dest, path.Base(rel))
		}
		dir, err := c.mkdirAll(path.Dir(path.Clean("/" + target)))
		if err != nil {
			return err
		}
		if err := c.copyEntry(srcPath, filepath.Join(dir, path.Base(target)), fi); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies the contents of the directory srcDir (rel in the
// source) into the directory dstDir.
func (c *copier) copyTree(srcDir, rel, dstDir string) error {
	ents, err := os.ReadDir(srcDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		r := path.Join(rel, e.Name())
		if c.src.ignored(r) && !(e.IsDir() && c.src.ignore.Exclusions()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		sp, dp := filepath.Join(srcDir, e.Name()), filepath.Join(dstDir, e.Name())
		if fi.IsDir() {
			if err := c.makeDir(dp, fi); err != nil {
				return err
			}
			if err := c.copyTree(sp, r, dp); err != nil {
				return err
			}
			if err := c.finish(dp, fi); err != nil {
				return err
			}
			continue
		}
		if c.src.ignored(r) {
			continue
		}
		if err := c.copyEntry(sp, dp, fi); err != nil {
			return err
		}
	}
	return nil
}

// makeDir makes (or reuses) the directory dp for the source directory fi.
func (c *copier) makeDir(dp string, fi fs.FileInfo) error {
	if st, err := os.Lstat(dp); err == nil {
		if st.IsDir() {
			return nil
		}
		if err := os.Remove(dp); err != nil {
			return err
		}
	}
	return os.Mkdir(dp, 0o755)
}

// copyEntry copies one non-directory entry.
func (c *copier) copyEntry(sp, dp string, fi fs.FileInfo) error {
	if st, err := os.Lstat(dp); err == nil {
		if st.IsDir() {
			return errdefs.InvalidArgument("cannot replace directory %s with a file", dp)
		}
		if err := os.Remove(dp); err != nil {
			return err
		}
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(sp)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dp); err != nil {
			return err
		}
	case fi.Mode().IsRegular():
		if err := copyFile(sp, dp); err != nil {
			return err
		}
	default:
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return errdefs.InvalidArgument("cannot copy %s", sp)
		}
		if err := unix.Mknod(dp, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	return c.finish(dp, fi)
}

// finish gives dp the owner, mode and times the copy should have.
func (c *copier) finish(dp string, fi fs.FileInfo) error {
	uid, gid := 0, 0
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && c.src.keepOwner {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	if c.opts.chown != nil {
		uid, gid = c.opts.chown.uid, c.opts.chown.gid
	}
	if err := os.Lchown(dp, uid, gid); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if c.opts.chmod != nil {
			mode = *c.opts.chmod
		}
		if err := os.Chmod(dp, mode); err != nil {
			return err
		}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dp, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyFile(sp, dp string) error {
	in, err := os.Open(sp)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeFile writes a COPY heredoc's content at dest.
func (c *copier) writeFile(dest, data string) error {
	dir, err := c.mkdirAll(path.Dir(path.Clean("/" + dest)))
	if err != nil {
		return err
	}
	p := filepath.Join(dir, path.Base(dest))
	os.Remove(p)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		return err
	}
	uid, gid := 0, 0
	if c.opts.chown != nil {
		uid, gid = c.opts.chown.uid, c.opts.chown.gid
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		return err
	}
	if c.opts.chmod != nil {
		return os.Chmod(p, *c.opts.chmod)
	}
	return nil
}
