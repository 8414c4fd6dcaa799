package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Spare writable directories. An overlay writable snapshot is three
// directories and a file (its directory, upper/, work/, info.json), which
// Prepare would otherwise make while a container is being created, on the
// path of `run`, and Remove delete as it is removed. So:
//
//   - MakeSpares makes them beforehand, off that path (the container
//     monitor does, between starts), as tmp/spare-0 ... tmp/spare-3
//     (each built as tmp/spare-new-<random> first);
//   - Prepare takes one (renaming it into a private name, so that two
//     processes never take the same) and writes its info.json in place;
//   - Remove keeps a snapshot whose upper directory is still as Prepare
//     made it (an empty directory, root's, mode 0755, no extended
//     attributes) as a spare, in a free slot, instead of deleting it.
//
// On file systems where allocating an inode costs more the more were freed
// lately (ext4 without a journal checks every recently freed inode it
// passes over), that is most of what making and removing a container costs
// the disk. A spare is an empty writable snapshot and nothing else: whatever
// is not exactly that is deleted, never reused.
const (
	sparePrefix = "spare-"
	spareSlots  = 4
)

func (s *store) spareDir(i int) string {
	return filepath.Join(s.root, "tmp", sparePrefix+strconv.Itoa(i))
}

// takeSpare renames a spare into a private directory of tmp/ and returns
// that, or "" if there is none.
func (s *store) takeSpare() string {
	if !s.d.spares() {
		return ""
	}
	for i := range spareSlots {
		dst, err := s.renameToTemp(s.spareDir(i), "active-")
		if err == nil {
			return dst
		}
	}
	return ""
}

// renameToTemp renames dir into tmp/ under prefix and a random suffix.
func (s *store) renameToTemp(dir, prefix string) (string, error) {
	for {
		var b [8]byte
		rand.Read(b[:])
		dst := filepath.Join(s.root, "tmp", prefix+hex.EncodeToString(b[:]))
		err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return dst, err
	}
}

func (s *store) MakeSpares(ctx context.Context) error {
	if !s.d.spares() {
		return nil
	}
	for i := range spareSlots {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := os.Lstat(s.spareDir(i)); err == nil {
			continue
		}
		if err := s.makeSpare(ctx, i); err != nil {
			return fmt.Errorf("make spare writable snapshot: %w", err)
		}
	}
	return nil
}

func (s *store) makeSpare(ctx context.Context, i int) error {
	dir, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), sparePrefix+"new-")
	if err != nil {
		return err
	}
	err = s.d.newActive(ctx, dir, nil)
	if err == nil {
		var f *os.File
		if f, err = os.OpenFile(filepath.Join(dir, infoFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			err = f.Close()
		}
	}
	if err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, s.spareDir(i), unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			err = nil // another process filled the slot
		} else if err == nil {
			return nil
		}
	}
	os.RemoveAll(dir)
	return err
}

// recycle keeps dir, a removed writable snapshot moved aside, as a spare
// if it is still exactly an empty one and a slot is free, and reports
// whether it did.
func (s *store) recycle(dir string) bool {
	if !s.d.spares() || !s.d.pristine(dir) {
		return false
	}
	for i := range spareSlots {
		err := unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, s.spareDir(i), unix.RENAME_NOREPLACE)
		if err == nil {
			return true
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return false
		}
	}
	return false
}

// pristine reports whether dir, an overlay writable snapshot that is not
// mounted, is as newActive made it: upper/ empty and unchanged, work/
// holding only what overlayfs itself keeps there between mounts (work/work,
// empty, which each mount makes afresh; incompat/volatile, which a
// volatile mount leaves and is removed here, as berth removes it before
// every mount). Anything else, and dir is not reused.
func (overlayDriver) pristine(dir string) bool {
	names, err := readNames(dir)
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{infoFile, "upper", "work"}) {
		return false
	}
	upper := filepath.Join(dir, "upper")
	var st unix.Stat_t
	if unix.Lstat(upper, &st) != nil || st.Mode != unix.S_IFDIR|0o755 || st.Uid != 0 || st.Gid != 0 {
		return false
	}
	if n, err := unix.Llistxattr(upper, nil); err != nil || n != 0 {
		return false
	}
	if !emptyDir(upper) {
		return false
	}
	work := filepath.Join(dir, "work")
	if unix.Lstat(work, &st) != nil || st.Mode != unix.S_IFDIR|0o700 || st.Uid != 0 || st.Gid != 0 {
		return false
	}
	names, err = readNames(work)
	if err != nil {
		return false
	}
	for _, n := range names {
		switch n {
		case "work":
			if !emptyDir(filepath.Join(work, n)) {
				return false
			}
		case "incompat":
			if os.RemoveAll(filepath.Join(work, n)) != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func emptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return err == io.EOF
}
