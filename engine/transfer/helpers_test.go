package transfer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/internal/testutil"
)

func newEngine(t *testing.T) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { testutil.UnmountAll(dir) }) // the run root's tmpfs
	e, err := engine.New(context.Background(), engine.Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func importBusybox(t *testing.T, e *engine.Engine, ref string) digest.Digest {
	t.Helper()
	f, err := os.Open(testutil.Images(t).Busybox)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := e.Import(context.Background(), f, engine.ImportOptions{Ref: ref, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
