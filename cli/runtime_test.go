package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// `berth runtime` is the OCI runtime with runc's command line: it runs a
// bundle made from the busybox rootfs, as berth-runtime does.
func TestRuntimeSubcommand(t *testing.T) {
	b := testutil.NewBerth(t)
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	os.Mkdir(rootfs, 0o755)
	if out, err := exec.Command("tar", "-xf", testutil.Images(t).Busybox, "-C", rootfs).CombinedOutput(); err != nil {
		t.Fatalf("untar busybox: %v\n%s", err, out)
	}
	state := t.TempDir()
	res := b.Run("runtime", "--root", state, "spec", "--bundle", bundle)
	if res.Code != 0 {
		t.Fatalf("runtime spec: %s", res)
	}
	p := filepath.Join(bundle, "config.json")
	var spec map[string]any
	raw, _ := os.ReadFile(p)
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("runtime spec wrote %q: %v", raw, err)
	}
	proc := spec["process"].(map[string]any)
	proc["args"] = []string{"sh", "-c", "echo hello from $(hostname); exit 3"}
	proc["terminal"] = false
	raw, _ = json.Marshal(spec)
	os.WriteFile(p, raw, 0o644)

	res = b.Run("runtime", "--root", state, "run", "--bundle", bundle, "rt-test")
	if res.Code != 3 || !strings.Contains(res.Stdout, "hello from") {
		t.Fatalf("runtime run: want exit 3 and the greeting, got %s", res)
	}
	if out := b.MustRun("runtime", "--root", state, "list", "-q").Stdout; strings.TrimSpace(out) != "" {
		t.Fatalf("runtime list after run: %q", out)
	}
}
