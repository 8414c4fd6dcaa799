package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func inodes(t *testing.T, dir string, n int) []uint64 {
	t.Helper()
	var out []uint64
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("sub-%d", i))
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st.Ino)
	}
	return out
}

func span(inos []uint64) uint64 { return slices.Max(inos) - slices.Min(inos) }

// TestSpreadSubdirs: on ext4, the subdirectories of a marked directory are
// spread over block groups (their inode numbers far apart), those of an
// unmarked one kept together; marking twice, or where the file system has
// no such flag, is no error.
func TestSpreadSubdirs(t *testing.T) {
	base := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(base, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("the test directory is not on ext4 (file system magic %#x)", fs.Type)
	}
	plain, spread := filepath.Join(base, "plain"), filepath.Join(base, "spread")
	for _, d := range []string{plain, spread} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := SpreadSubdirs(spread); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(spread, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	unix.Close(fd)
	if err != nil || flags&topDirFlag == 0 {
		t.Fatalf("flags of the marked directory: %#x, %v; want FS_TOPDIR_FL", flags, err)
	}
	together, apart := span(inodes(t, plain, 8)), span(inodes(t, spread, 8))
	// A block group holds a few thousand inodes at most on any ext4 mkfs
	// makes by default (8192 for 4 KiB blocks and 128 KiB per inode).
	if together >= 8192 || apart < 8192 {
		t.Errorf("inode numbers of 8 subdirectories span %d unmarked, %d marked: want them together, then apart", together, apart)
	}

	if err := SpreadSubdirs("/dev/shm"); err != nil {
		t.Errorf("on a tmpfs: %v, want no error", err)
	}
	if err := SpreadSubdirs(filepath.Join(base, "missing")); err == nil {
		t.Error("a missing directory: no error")
	}
}
