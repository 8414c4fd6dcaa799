package registry

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestConformance runs the OCI distribution-spec conformance suites (the
// current program and the spec 1.1 ginkgo suite, at the versions pinned in
// conformance.sh) against `berth registry serve`, every category and every
// optional API berth has enabled, in the runs conformance.sh makes (an open
// registry, TLS with basic auth, and for the legacy suite also a read-only
// registry holding preloaded content and a registry that does not mount).
// It fails on any failed case, and on any case that no run of its suite
// passed. The suites are built from the Go module proxy the first time and
// kept under _out/.
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
	for _, suite := range []struct {
		name string
		runs []string
	}{
		{"current", []string{"current", "current-auth"}},
		{"legacy", []string{"legacy", "legacy-auth", "legacy-preloaded", "legacy-nomount"}},
	} {
		// ran: the cases some run passed; seen: every case of any run.
		ran, seen := map[string]bool{}, map[string]bool{}
		for _, run := range suite.runs {
			c, err := countJUnit(filepath.Join(out, "results", run, "junit.xml"), suite.name == "current")
			if err != nil {
				t.Errorf("%s: %v", run, err)
				continue
			}
			t.Logf("%s: %d passed, %d failed, %d skipped", run, len(c.passed), len(c.failed), len(c.skipped))
			for _, f := range c.failed {
				t.Errorf("%s: failed: %s", run, f)
			}
			if len(c.passed) == 0 {
				t.Errorf("%s: no test passed", run)
			}
			for _, n := range c.passed {
				ran[n], seen[n] = true, true
			}
			for _, n := range append(c.failed, c.skipped...) {
				seen[n] = true
			}
		}
		var never []string
		for n := range seen {
			if !ran[n] {
				never = append(never, n)
			}
		}
		sort.Strings(never)
		t.Logf("%s: %d cases, %d passed in some run, %d in none", suite.name, len(seen), len(ran), len(never))
		for _, n := range never {
			t.Errorf("%s: no run passes %q", suite.name, n)
		}
	}
	if err != nil {
		t.Fatalf("conformance.sh: %v", err)
	}
}

type counts struct{ passed, failed, skipped []string }

// countJUnit sorts the leaf cases of a suite's junit report by outcome. The current program also reports every group of cases as a
// case of its own; leaves are three levels deep ("OCI Conformance
// Test/<data>/<phase>/...") but for the top-level ping.
func countJUnit(path string, current bool) (counts, error) {
	var c counts
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
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
		return c, fmt.Errorf("%s: %w", path, err)
	}
	// Some cases share a name; the second is "<name> (2)", and so on,
	// the same in every run.
	seen := map[string]int{}
	for _, tc := range doc.Cases {
		if current && strings.Count(tc.Name, "/") < 2 && !strings.HasSuffix(tc.Name, "/ping") {
			continue
		}
		seen[tc.Name]++
		if k := seen[tc.Name]; k > 1 {
			tc.Name = fmt.Sprintf("%s (%d)", tc.Name, k)
		}
		switch {
		case tc.Failure != nil || tc.Error != nil || tc.Status == "failed" || tc.Status == "failure" || tc.Status == "error":
			c.failed = append(c.failed, tc.Name)
		case tc.Skipped != nil || tc.Status == "skipped" || tc.Status == "disabled" || tc.Status == "pending":
			c.skipped = append(c.skipped, tc.Name)
		default:
			c.passed = append(c.passed, tc.Name)
		}
	}
	return c, nil
}
