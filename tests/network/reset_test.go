package network

import (
	"os"
	"strings"
	"testing"
)

// TestSystemReset: `system reset` takes every container, network and image
// of the data root, and what its networks made on the host (the default
// network's bridge and rules included, which nothing else removes), and
// leaves both roots empty.
func TestSystemReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.b.MustRun("network", "create", "rn")
	netID := strings.TrimSpace(e.b.MustRun("network", "inspect", "-f", "{{.Id}}", "rn").Stdout)
	defID := strings.TrimSpace(e.b.MustRun("network", "inspect", "-f", "{{.Id}}", "bridge").Stdout)
	e.b.MustRun("run", "-d", "--name", "p", "-p", "127.0.0.1::80", "busybox", "sleep", "600")
	e.b.MustRun("run", "-d", "--name", "u", "--network", "rn", "busybox", "sleep", "600")
	e.b.MustRun("volume", "create", "vol")
	if !linkExists(e.bridge) || !linkExists("br-"+netID[:12]) {
		t.Fatalf("the networks' bridges are not there before the reset")
	}
	// Without --force it asks, and a no changes nothing.
	if res := e.b.RunInput(strings.NewReader("n\n"), "system", "reset"); res.Code != 0 || !strings.Contains(res.Stdout, "WARNING!") {
		t.Errorf("system reset answered no: %s", res)
	}
	if n := len(strings.Fields(e.b.MustRun("ps", "-aq").Stdout)); n != 2 {
		t.Fatalf("%d containers after a reset answered no, want 2", n)
	}
	e.b.MustRun("system", "reset", "--force")
	for _, br := range []string{e.bridge, "br-" + netID[:12]} {
		if linkExists(br) {
			t.Errorf("bridge %s is left after system reset", br)
		}
	}
	table := nftTable(t)
	for _, id := range []string{defID, netID} {
		if strings.Contains(table, id[:12]) {
			t.Errorf("berth's nftables table still has rules of network %s:\n%s", id[:12], table)
		}
	}
	for _, dir := range []string{e.b.Root, e.b.RunRoot} {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Errorf("%s holds %d entries after system reset", dir, len(ents))
		}
	}
	if out := e.b.MustRun("images", "-q").Stdout; out != "" {
		t.Errorf("images after system reset: %q", out)
	}
}
