package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/testutil"
)

func newEngine(t *testing.T) *Engine {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { testutil.UnmountAll(dir) }) // the run root's tmpfs
	e, err := New(context.Background(), Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func importBusybox(t *testing.T, e *Engine, ref string) digest.Digest {
	t.Helper()
	f, err := os.Open(testutil.Images(t).Busybox)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := e.Import(context.Background(), f, ImportOptions{Ref: ref, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A blob an operation in flight has leased survives a collection; once the
// lease is released the collection removes it.
func TestGCSparesLeased(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	l, err := e.NewLease()
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.PutBlob(ctx, l, []byte("in flight"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.gc(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.content.Info(ctx, info.Digest); err != nil {
		t.Fatalf("leased blob collected: %v", err)
	}
	l.Release()
	rep, err := e.gc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.content.Info(ctx, info.Digest); !errdefs.IsNotFound(err) || rep.Blobs != 1 {
		t.Fatalf("released blob kept: %v, report %+v", err, rep)
	}
}

// Loads and removals of the same image racing each other, as separate
// berth commands would: whatever the interleaving, every image left in the
// store has all its blobs and layers.
func TestLoadRacingRemove(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	importBusybox(t, e, "busybox")
	var archive bytes.Buffer
	if err := e.Save(ctx, &archive, []string{"busybox"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker has its own Engine on the same root, as a process would.
			we, err := New(ctx, Options{Root: e.root, RunRoot: e.runRoot})
			if err != nil {
				t.Error(err)
				return
			}
			for range 5 {
				if w%2 == 0 {
					if _, err := we.Load(ctx, bytes.NewReader(archive.Bytes())); err != nil {
						t.Errorf("load: %v", err)
					}
				} else if _, err := we.RemoveImage(ctx, "busybox", true); err != nil && !errdefs.IsNotFound(err) {
					t.Errorf("rmi: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	checkConsistent(t, e)
}

// checkConsistent asserts that every recorded image can be read whole.
func checkConsistent(t *testing.T, e *Engine) {
	t.Helper()
	ctx := context.Background()
	db, err := e.images.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id, rec := range db.Images {
		mb, err := e.content.ReadAll(ctx, rec.Manifest.Digest, image.MaxManifestSize)
		if err != nil {
			t.Errorf("image %s: manifest: %v", id, err)
			continue
		}
		m, _ := image.ParseManifest(mb)
		for _, d := range append(m.Layers, m.Config) {
			if _, err := e.content.Info(ctx, d.Digest); err != nil {
				t.Errorf("image %s: blob %s: %v", id, d.Digest, err)
			}
		}
		for _, c := range image.ChainIDs(rec.DiffIDs) {
			if _, err := e.snaps.Stat(ctx, c); err != nil {
				t.Errorf("image %s: layer %s: %v", id, c, err)
			}
		}
	}
}

func TestRemoveNeedsForceForSeveralNames(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	id := importBusybox(t, e, "a")
	if err := e.Tag(ctx, "a", "b:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RemoveImage(ctx, id.Encoded()[:12], false); !errdefs.IsConflict(err) {
		t.Fatalf("rmi by ID of an image with two names: %v, want conflict", err)
	}
	res, err := e.RemoveImage(ctx, id.Encoded()[:12], true)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeleteResponse{{Untagged: "a:latest"}, {Untagged: "b:1"}, {Deleted: id.String()}}
	if len(res) != len(want) {
		t.Fatalf("rmi -f = %+v, want %+v", res, want)
	}
	for i := range want {
		if res[i] != want[i] {
			t.Fatalf("rmi -f = %+v, want %+v", res, want)
		}
	}
	checkConsistent(t, e)
}
