package registry

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry"
)

// TestConformance runs the OCI distribution-spec conformance suites against
// berth's registry, every category and every optional API enabled, and
// fails on any failure.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suites take a minute; skipped with -short")
	}
	dir := os.Getenv("BERTH_CONFORMANCE_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "..", "shared", "conformance")
	}
	script := filepath.Join(dir, "distribution-spec", "run.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("no conformance script (set BERTH_CONFORMANCE_DIR): %v", err)
	}
	need(t, "curl", "curl")
	need(t, "python3", "python3")
	addr := serve(t, registry.Config{})

	cmd := exec.Command(script, addr)
	cmd.Env = append(os.Environ(),
		"CONF_WORK="+confWork(),
		// Optional APIs the suite leaves off by default: berth has them.
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_AUTOMATIC_CROSSMOUNT=1",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, addr, err, out)
	}
	// Summary lines: "current: 793 passed, 0 failed, 0 skipped".
	re := regexp.MustCompile(`^(current|legacy): (\d+) passed, (\d+) failed, (\d+) skipped`)
	found := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		found++
		t.Log(sc.Text())
		if m[3] != "0" {
			t.Errorf("%s suite: %s failures", m[1], m[3])
		}
	}
	if found != 2 {
		t.Fatalf("expected the summaries of two suites, got %d:\n%s", found, out)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func confWork() string {
	if d := os.Getenv("CONF_WORK"); d != "" {
		return d
	}
	return "/tmp/conf/distribution-spec"
}
