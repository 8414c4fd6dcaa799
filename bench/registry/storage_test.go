package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/procfs"
)

// benchStorage is where a bench keeps files: skopeo's OCI layouts (the
// client's side) or the registries' storage (the servers' side, the same
// kind for both registries).
type benchStorage struct {
	dir  string // the directory to make files under
	desc string // what it is, for the bench's output
}

// storageFor returns the storage of one side, by the environment variable
// env: "tmpfs" (the default) is a tmpfs the bench mounts for itself under
// os.TempDir() and unmounts at the end (or /dev/shm, a tmpfs too, when it
// may not mount), "disk" a directory under os.TempDir().
func storageFor(t *testing.T, env, what string) benchStorage {
	mode := os.Getenv(env)
	if mode == "" {
		mode = "tmpfs"
	}
	switch mode {
	case "tmpfs":
		dir, err := os.MkdirTemp("", "berth-bench-"+what+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dir) })
		merr := mountTmpfs(dir)
		if merr == nil {
			t.Cleanup(func() {
				if err := unmount(dir); err != nil {
					t.Errorf("unmount %s: %v", dir, err)
				}
			})
			return benchStorage{dir, fmt.Sprintf("%s (%s, mounted by the bench)", dir, fsType(dir))}
		}
		if !strings.HasPrefix(fsType("/dev/shm"), "tmpfs,") {
			t.Fatalf("%s=tmpfs: cannot mount a tmpfs (%v) and /dev/shm is no tmpfs; set %s=disk", env, merr, env)
		}
		shm, err := os.MkdirTemp("/dev/shm", "berth-bench-"+what+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		return benchStorage{shm, fmt.Sprintf("%s (%s; mounting a tmpfs failed: %v)", shm, fsType(shm), merr)}
	case "disk":
		dir := t.TempDir()
		return benchStorage{dir, fmt.Sprintf("%s (%s)", dir, fsType(dir))}
	}
	t.Fatalf("%s=%q: want tmpfs or disk", env, mode)
	return benchStorage{}
}

// sub makes a fresh directory under s.
func (s benchStorage) sub(t *testing.T, name string) string {
	dir, err := os.MkdirTemp(s.dir, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fsType describes the file system dir is on, from /proc/self/mountinfo:
// its type, source and super-block options (for ext4, whether it has a
// journal shows in neither; tune2fs -l tells).
func fsType(dir string) string {
	ms, err := procfs.Mounts()
	if err != nil {
		return "unknown file system"
	}
	dir, _ = filepath.EvalSymlinks(dir)
	best, desc := "", "unknown file system"
	for _, m := range ms {
		mp := m.Point
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, desc = mp, fmt.Sprintf("%s, from %s, mounted on %s", m.FSType, m.Source, mp)
		}
	}
	return desc
}
