package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// TestEndpointCache reads records through a cache while they are added,
// replaced and removed: every read gives what the files hold, and what a
// caller does to a record it got does not change the next read.
func TestEndpointCache(t *testing.T) {
	dir := t.TempDir()
	write := func(id, ip string, aliases ...string) {
		t.Helper()
		b, err := json.Marshal(Endpoint{ContainerID: id, IP: netip.MustParseAddr(ip), Aliases: aliases})
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFileNoSync(filepath.Join(dir, id+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := NewEndpointCache()
	check := func(want map[string]string) {
		t.Helper()
		got, err := c.read(dir)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := readEndpoints(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(plain) != len(want) {
			t.Fatalf("read %d records through the cache, %d without, want %d", len(got), len(plain), len(want))
		}
		for i, e := range got {
			if want[e.ContainerID] != e.IP.String() || plain[i].ContainerID != e.ContainerID || plain[i].IP != e.IP {
				t.Errorf("record %s: cached %s, file %s, want %s", e.ContainerID, e.IP, plain[i].IP, want[e.ContainerID])
			}
			e.Aliases = append(e.Aliases[:0], "changed by the caller")
		}
	}
	write("a", "10.0.0.2", "x")
	write("b", "10.0.0.3")
	check(map[string]string{"a": "10.0.0.2", "b": "10.0.0.3"})
	check(map[string]string{"a": "10.0.0.2", "b": "10.0.0.3"}) // from the cache
	if got, _ := c.read(dir); got[0].Aliases[0] != "x" {
		t.Errorf("a caller's change reached the cache: aliases %q", got[0].Aliases)
	}
	write("a", "10.0.0.9") // replaced
	os.Remove(filepath.Join(dir, "b.json"))
	write("c", "10.0.0.4")
	check(map[string]string{"a": "10.0.0.9", "c": "10.0.0.4"})
	if n := len(c.m); n != 2 {
		t.Errorf("the cache holds %d records after b went, want 2", n)
	}
}
