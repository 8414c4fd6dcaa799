package initproc

import (
	"os/exec"
	"strings"
	"testing"
)

// The container's init runs this package before anything else of the
// binary it is linked into, on the hottest path of the project: every
// package it imports is initialised at each container start. Keep it to the
// standard library's basics, x/sys and the spec's types.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/berth-dev/berth/runtime/internal/initproc": true,
		"github.com/opencontainers/runtime-spec/specs-go":      true,
		"golang.org/x/sys/unix":                                true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("the init path imports %s", p)
		}
	}
	std, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(std)) {
		for _, heavy := range []string{"net", "net/http", "crypto/tls", "os/exec", "text/template", "html/template", "log/slog"} {
			if p == heavy {
				t.Errorf("the init path imports %s", p)
			}
		}
	}
}
