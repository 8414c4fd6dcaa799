package lease

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestLeaseProtectsUntilReleased(t *testing.T) {
	dir := t.TempDir()
	l, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, c := digest.FromString("blob"), digest.FromString("chain")
	l.AddBlobs(b)
	l.AddLayers(c)
	res, err := Active(dir)
	if err != nil || !slices.Contains(res.Blobs, b) || !slices.Contains(res.Layers, c) {
		t.Fatalf("Active = %+v, %v", res, err)
	}
	l.Release()
	res, _ = Active(dir)
	if len(res.Blobs)+len(res.Layers) != 0 {
		t.Fatalf("released lease still protects: %+v", res)
	}
}

func TestDeadProcessLeaseIsVoid(t *testing.T) {
	dir := t.TempDir()
	// A lease of a process that no longer exists (PID reuse is caught by
	// the start time, so a live PID with another start time counts too).
	stale := `{"pid":1,"start":"not-the-real-start","blobs":["` + digest.FromString("x").String() + `"]}`
	p := filepath.Join(dir, "1-stale.json")
	os.WriteFile(p, []byte(stale), 0o600)
	res, err := Active(dir)
	if err != nil || len(res.Blobs) != 0 {
		t.Fatalf("Active = %+v, %v", res, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("stale lease file not removed")
	}
}
