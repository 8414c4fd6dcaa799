package registry

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

// TestConfigCrossMount checks the config file's crossMount key reaches the
// server: with "off", a mount (with from) of a blob the registry holds
// starts an upload instead; an unknown value is refused.
func TestConfigCrossMount(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(`{"crossMount": "off"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = filepath.Join(dir, "registry")
	r, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Store().Close()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	blob := "layer"
	d := digest.FromString(blob)
	resp, err := http.Post(srv.URL+"/v2/a/blobs/uploads/?digest="+d.String(), "application/octet-stream", strings.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %s", resp.Status)
	}
	resp, err = http.Post(srv.URL+"/v2/b/blobs/uploads/?mount="+d.String()+"&from=a", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(resp.Header.Get("Location"), "/v2/b/blobs/uploads/") {
		t.Fatalf("mount with crossMount off: %s, Location %q; want 202 and an upload", resp.Status, resp.Header.Get("Location"))
	}

	cfg.CrossMount = "sometimes"
	if _, err := New(cfg, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("crossMount %q: %v, want an invalid argument", cfg.CrossMount, err)
	}
}
