package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeavesOutTheImageTools: berth starts for every command and every
// container, so it must not link what only the image tools need (they run
// through berth-imagetools): each of these costs every process time to
// load and initialize.
func TestLeavesOutTheImageTools(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, heavy := range []string{
		"github.com/moby/buildkit/",
		"github.com/google/go-containerregistry/",
		"google.golang.org/protobuf/",
		"github.com/vbauerster/mpb/",
		"github.com/berth-dev/berth/build",
		"github.com/berth-dev/berth/remotes",
		"github.com/berth-dev/berth/registry",
		"github.com/berth-dev/berth/engine/transfer",
		"github.com/berth-dev/berth/cli/imagetools",
		"net/http",
		"crypto/tls",
	} {
		for _, d := range deps {
			if d == heavy || strings.HasPrefix(d, heavy) && (strings.HasSuffix(heavy, "/") || strings.HasPrefix(d, heavy+"/")) {
				if d == "github.com/berth-dev/berth/build/backend" || d == "github.com/berth-dev/berth/build/cache" {
					continue // the engine's side of builds: light by design
				}
				t.Errorf("cmd/berth links %s", d)
			}
		}
	}
}
