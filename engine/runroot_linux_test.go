package engine

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/procfs"
	"github.com/berth-dev/berth/internal/testutil"
)

// TestRunRootOnTmpfs: a new run root gets a tmpfs of its own, once, even
// when several engines open it at once; one that already holds state on
// disk is left there.
func TestRunRootOnTmpfs(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.UnmountAll(dir) })
	run := filepath.Join(dir, "run")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := New(context.Background(), Options{Root: filepath.Join(dir, "root"), RunRoot: run, StorageDriver: "native"}); err != nil {
				t.Errorf("engine %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if !onTmpfs(run) {
		t.Fatalf("a new run root is not on tmpfs")
	}
	if n := mountsAt(t, run); n != 1 {
		t.Errorf("%d mounts on the run root, want 1", n)
	}

	used := filepath.Join(dir, "used")
	if err := os.MkdirAll(filepath.Join(used, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Options{Root: filepath.Join(dir, "root"), RunRoot: used, StorageDriver: "native"}); err != nil {
		t.Fatal(err)
	}
	if n := mountsAt(t, used); n != 0 {
		t.Errorf("a run root with state on disk got %d mounts over it", n)
	}
}

func mountsAt(t *testing.T, dir string) int {
	t.Helper()
	ms, err := procfs.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	n := 0
	for _, m := range ms {
		if m.Point == real {
			n++
		}
	}
	return n
}
