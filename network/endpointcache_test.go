package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

// TestEndpointGeneration: a directory whose writers keep its generation
// file is read whole from the cache while the generation stays (a record
// changed behind its back is not seen: the cache was used), and afresh
// once a writer bumps it, or once the file is gone.
func TestEndpointGeneration(t *testing.T) {
	dir := t.TempDir()
	write := func(id, ip string, bump bool) {
		t.Helper()
		b, err := json.Marshal(Endpoint{ContainerID: id, IP: netip.MustParseAddr(ip)})
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFileNoSync(filepath.Join(dir, id+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if bump {
			bumpGeneration(dir)
		}
	}
	c := NewEndpointCache()
	check := func(step string, want ...string) {
		t.Helper()
		got, err := c.read(dir)
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, e := range got {
			ips = append(ips, e.ContainerID+"="+e.IP.String())
		}
		slices.Sort(ips)
		if !slices.Equal(ips, want) {
			t.Errorf("%s: read %q, want %q", step, ips, want)
		}
	}
	write("a", "10.0.0.2", true)
	write("b", "10.0.0.3", true)
	g := generation(dir)
	if g == "" {
		t.Fatal("no generation after two writes")
	}
	check("first read", "a=10.0.0.2", "b=10.0.0.3")
	// Rewritten in place, same size, no bump: only the cache can answer
	// with the old address.
	b, _ := json.Marshal(Endpoint{ContainerID: "a", IP: netip.MustParseAddr("10.0.0.7")})
	if err := os.WriteFile(filepath.Join(dir, "a.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if generation(dir) != g {
		t.Fatal("the generation changed with no bump and no new entry")
	}
	check("same generation", "a=10.0.0.2", "b=10.0.0.3")
	bumpGeneration(dir)
	check("bumped", "a=10.0.0.7", "b=10.0.0.3")
	os.Remove(filepath.Join(dir, "b.json"))
	bumpGeneration(dir)
	check("removed and bumped", "a=10.0.0.7")
	write("c", "10.0.0.4", true)
	check("added", "a=10.0.0.7", "c=10.0.0.4")

	// This process's own change, made as Attach and Detach make theirs,
	// keeps the list current: the next read is the cache's (it does not
	// see a record changed behind its back) and holds the change.
	before := c.current(dir)
	if before == "" {
		t.Fatal("the list just read is not current")
	}
	d := &Endpoint{ContainerID: "d", IP: netip.MustParseAddr("10.0.0.5")}
	write("d", "10.0.0.5", true)
	c.changed(dir, before, "d", d)
	b, _ = json.Marshal(Endpoint{ContainerID: "c", IP: netip.MustParseAddr("10.0.0.6")})
	if err := os.WriteFile(filepath.Join(dir, "c.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	check("after this process's write", "a=10.0.0.7", "c=10.0.0.4", "d=10.0.0.5")
	before = c.current(dir)
	os.Remove(filepath.Join(dir, "d.json"))
	bumpGeneration(dir)
	c.changed(dir, before, "d", nil)
	check("after this process's removal", "a=10.0.0.7", "c=10.0.0.4")
	// A change by another process in between: the list is read again.
	before = c.current(dir)
	write("e", "10.0.0.9", true) // another process
	write("f", "10.0.0.10", true)
	c.changed(dir, before, "f", &Endpoint{ContainerID: "f", IP: netip.MustParseAddr("10.0.0.10")})
	check("after another process's write", "a=10.0.0.7", "c=10.0.0.6", "e=10.0.0.9", "f=10.0.0.10")

	os.Remove(filepath.Join(dir, generationFile))
	b, _ = json.Marshal(Endpoint{ContainerID: "a", IP: netip.MustParseAddr("10.0.0.8")})
	if err := os.WriteFile(filepath.Join(dir, "a.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	check("no generation file", "a=10.0.0.8", "c=10.0.0.6", "e=10.0.0.9", "f=10.0.0.10")
}
