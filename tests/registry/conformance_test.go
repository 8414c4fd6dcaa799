package registry

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConformance runs the OCI distribution-spec conformance suites (the
// current program and the spec 1.1 ginkgo suite, at the versions pinned in
// conformance.sh) against `berth registry serve`, every category and every
// optional API berth has enabled, and fails on any failure. The suites are
// built from the Go module proxy the first time and kept under _out/.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suites build and run for up to a minute; skipped with -short")
	}
	top := repoRoot(t)
	out := filepath.Join(top, "_out", "conformance")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(top, "tests", "registry", "conformance.sh"))
	cmd.Env = append(os.Environ(), "CONFORMANCE_OUT="+out)
	b, err := cmd.CombinedOutput()
	t.Logf("conformance.sh:\n%s", b)
	for _, suite := range []string{"current", "legacy"} {
		c, failures, cerr := countJUnit(filepath.Join(out, "results", suite, "junit.xml"), suite == "current")
		if cerr != nil {
			t.Errorf("%s: %v", suite, cerr)
			continue
		}
		t.Logf("%s: %d passed, %d failed, %d skipped", suite, c.passed, c.failed, c.skipped)
		for _, f := range failures {
			t.Errorf("%s: failed: %s", suite, f)
		}
		if c.passed == 0 {
			t.Errorf("%s: no test passed", suite)
		}
	}
	if err != nil {
		t.Fatalf("conformance.sh: %v", err)
	}
}

type counts struct{ passed, failed, skipped int }

// countJUnit counts the leaf cases of a suite's junit report and names the
// failed ones. The current program also reports every group of cases as a
// case of its own; leaves are three levels deep ("OCI Conformance
// Test/<data>/<phase>/...") but for the top-level ping.
func countJUnit(path string, current bool) (counts, []string, error) {
	var c counts
	b, err := os.ReadFile(path)
	if err != nil {
		return c, nil, err
	}
	var doc struct {
		Cases []struct {
			Name    string    `xml:"name,attr"`
			Status  string    `xml:"status,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testsuite>testcase"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return c, nil, fmt.Errorf("%s: %w", path, err)
	}
	var failures []string
	for _, tc := range doc.Cases {
		if current && strings.Count(tc.Name, "/") < 2 && !strings.HasSuffix(tc.Name, "/ping") {
			continue
		}
		switch {
		case tc.Failure != nil || tc.Error != nil || tc.Status == "failed" || tc.Status == "failure" || tc.Status == "error":
			c.failed++
			failures = append(failures, tc.Name)
		case tc.Skipped != nil || tc.Status == "skipped" || tc.Status == "disabled" || tc.Status == "pending":
			c.skipped++
		default:
			c.passed++
		}
	}
	return c, failures, nil
}
