package testutil

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestBerth(t *testing.T) {
	b := NewBerth(t)
	if res := b.MustRun("images", "-q"); strings.TrimSpace(res.Stdout) != "" {
		t.Fatalf("fresh berth root has images:\n%s", res.Stdout)
	}
	id := strings.TrimSpace(b.MustRun("import", Images(t).Busybox, "localhost/testutil/busybox:1").Stdout)
	if !strings.HasPrefix(id, "sha256:") {
		t.Errorf("berth import printed %q, want an image ID", id)
	}

	// The pattern StoreListing is for: a command that fails must leave
	// the store exactly as it was.
	before := StoreListing(t, b.Root)
	if before == "" {
		t.Fatal("the store is empty after an import")
	}
	res := b.Run("import", filepath.Join(t.TempDir(), "missing.tar"))
	if res.Code != 125 {
		t.Errorf("berth import of a missing file: %s\nwant exit code 125", res)
	}
	if after := StoreListing(t, b.Root); after != before {
		t.Errorf("a failed import changed the store:\n%s\nthen:\n%s", before, after)
	}
}
