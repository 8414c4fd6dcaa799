package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// network ls, inspect, rm and prune print what Docker prints.
func TestNetworkCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := freeSubnet(t)
	id := strings.TrimSpace(e.b.MustRun("network", "create", "--subnet", sub.String(), "--label", "team=web", "front").Stdout)
	if len(id) != 64 {
		t.Fatalf("network create printed %q, want a 64-digit ID", id)
	}
	other := strings.TrimSpace(e.b.MustRun("network", "create", "--subnet", freeSubnet(t).String(), "--internal", "back").Stdout)

	out := e.b.MustRun("network", "ls").Stdout
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if hdr := strings.Fields(lines[0]); !slices.Equal(hdr, []string{"NETWORK", "ID", "NAME", "DRIVER", "SCOPE"}) {
		t.Errorf("network ls header: %q", lines[0])
	}
	var names []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Errorf("network ls row: %q", l)
			continue
		}
		names = append(names, f[1])
		if f[1] == "front" && (f[0] != id[:12] || f[2] != "bridge" || f[3] != "local") {
			t.Errorf("network ls row of front: %q", l)
		}
	}
	if !slices.Equal(names, []string{"back", "bridge", "front", "host", "none"}) {
		t.Errorf("network ls names: %q", names)
	}
	if got := strings.Fields(e.b.MustRun("network", "ls", "-q", "--filter", "label=team=web").Stdout); !slices.Equal(got, []string{id[:12]}) {
		t.Errorf("network ls -q --filter label=team=web: %q", got)
	}
	if got := strings.Fields(e.b.MustRun("network", "ls", "--filter", "type=custom", "--format", "{{.Name}} {{.Internal}}").Stdout); !slices.Equal(got, []string{"back", "true", "front", "false"}) {
		t.Errorf("network ls --filter type=custom --format: %q", got)
	}

	e.b.MustRun("run", "-d", "--name", "c", "--network", "front", "busybox", "sleep", "600")
	c := e.inspect("c")[0]
	var nets []struct {
		Name     string
		ID       string `json:"Id"`
		Driver   string
		Scope    string
		Internal bool
		IPAM     struct {
			Config []struct{ Subnet, Gateway string }
		}
		Containers map[string]struct{ Name, IPv4Address, MacAddress string }
		Labels     map[string]string
	}
	res := e.b.MustRun("network", "inspect", "front", other[:12])
	if err := json.Unmarshal([]byte(res.Stdout), &nets); err != nil || len(nets) != 2 {
		t.Fatalf("network inspect front back: %v\n%s", err, res.Stdout)
	}
	f := nets[0]
	if f.Name != "front" || f.ID != id || f.Driver != "bridge" || f.Scope != "local" || f.Internal || f.Labels["team"] != "web" {
		t.Errorf("network inspect front: %+v", f)
	}
	if len(f.IPAM.Config) != 1 || f.IPAM.Config[0].Subnet != sub.String() || f.IPAM.Config[0].Gateway != addr(sub, 1).String() {
		t.Errorf("network inspect front: IPAM %+v, want %s via %s", f.IPAM, sub, addr(sub, 1))
	}
	if ep, ok := f.Containers[c.ID]; !ok || ep.Name != "c" || ep.IPv4Address != c.NetworkSettings.Networks["front"].IPAddress+"/24" {
		t.Errorf("network inspect front: Containers %+v, want c at %s", f.Containers, c.NetworkSettings.Networks["front"].IPAddress)
	}
	if nets[1].Name != "back" || !nets[1].Internal {
		t.Errorf("network inspect back: %+v", nets[1])
	}
	if got := strings.TrimSpace(e.b.MustRun("network", "inspect", "-f", "{{.Name}} {{.Driver}}", "front").Stdout); got != "front bridge" {
		t.Errorf("network inspect -f: %q", got)
	}
	e.mustFail("not found", "network", "inspect", "nosuch")

	// In use: rm refuses, prune keeps it.
	e.mustFail("has active endpoints", "network", "rm", "front")
	e.mustFail("pre-defined network", "network", "rm", "bridge")
	e.b.MustRun("network", "create", "--subnet", freeSubnet(t).String(), "spare")
	res = e.b.MustRun("network", "prune", "-f")
	if got := strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n"); !slices.Equal(got, []string{"Deleted Networks:", "back", "spare"}) {
		t.Errorf("network prune -f printed %q", res.Stdout)
	}
	e.b.MustRun("rm", "-f", "c")
	if got := e.b.MustRun("network", "rm", "front").Stdout; got != "front\n" {
		t.Errorf("network rm front printed %q", got)
	}
	if got := strings.Fields(e.b.MustRun("network", "ls", "--format", "{{.Name}}").Stdout); !slices.Equal(got, []string{"bridge", "host", "none"}) {
		t.Errorf("networks left: %q", got)
	}
	files, _ := filepath.Glob(filepath.Join(e.b.Root, "network", "networks", "*.json"))
	if len(files) != 3 {
		t.Errorf("network files left: %q", files)
	}
}

// Bad input: a clear error, exit code 125, and nothing changed.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := freeSubnet(t)
	e.b.MustRun("network", "create", "--subnet", sub.String(), "one")
	before := e.b.MustRun("network", "ls", "--no-trunc").Stdout
	e.mustFail("overlaps with network ", "network", "create", "--subnet", netip.PrefixFrom(sub.Addr(), 16).Masked().String(), "two")
	e.mustFail("overlaps with network one", "network", "create", "--subnet", addr(sub, 128).String()+"/25", "two")
	e.mustFail("overlaps with network bridge", "network", "create", "--subnet", e.subnet.String(), "two")
	e.mustFail("already exists", "network", "create", "--subnet", freeSubnet(t).String(), "one")
	e.mustFail("invalid network name", "network", "create", "bad/name")
	e.mustFail("not supported", "network", "create", "-d", "overlay", "two")
	if after := e.b.MustRun("network", "ls", "--no-trunc").Stdout; after != before {
		t.Errorf("networks changed by failed creates:\n%s\nthen\n%s", before, after)
	}

	for _, spec := range []string{"80:80:80", "70000:80", "80:0", "8080-8081:80-82", "80/sctp", "abc", "[::1]:80:80"} {
		e.mustFail("invalid port spec", "run", "-d", "-p", spec, "busybox", "sleep", "1")
	}
	e.mustFail("network nosuch not found", "run", "-d", "--network", "nosuch", "busybox", "sleep", "1")
	e.mustFail("cannot publish on 192.0.2.254", "run", "-d", "-p", "192.0.2.254:8080:80", "busybox", "sleep", "1")
	if ids := e.containerIDs(); len(ids) > 0 {
		t.Errorf("containers left by failed runs: %q", ids)
	}
	if linkExists(e.bridge) {
		t.Errorf("bridge %s made by failed runs", e.bridge)
	}

	e.b.MustRun("run", "-d", "--name", "c", "busybox", "sleep", "600")
	nets := e.inspect("c")[0].NetworkSettings.Networks
	e.mustFail("network nosuch not found", "network", "connect", "nosuch", "c")
	e.mustFail("network nosuch not found", "network", "disconnect", "nosuch", "c")
	e.mustFail("invalid IPv4 address", "network", "connect", "--ip", "bogus", "one", "c")
	e.mustFail("not a free host address", "network", "connect", "--ip", "192.0.2.77", "one", "c")
	if got := e.inspect("c")[0].NetworkSettings.Networks; mustJSON(got) != mustJSON(nets) {
		t.Errorf("c's networks changed by failed connects: %s, was %s", mustJSON(got), mustJSON(nets))
	}
	if out := e.b.MustRun("exec", "c", "ip", "-o", "link").Stdout; !slices.Equal(linkNames(out), []string{"eth0", "lo"}) {
		t.Errorf("c's links after failed connects:\n%s", out)
	}
	recs, _ := filepath.Glob(filepath.Join(e.b.RunRoot, "network", "*", "endpoints", "*.json"))
	if len(recs) != 1 {
		t.Errorf("endpoint records after failed connects: %q", recs)
	}
	if _, err := os.Stat(filepath.Join(e.b.RunRoot, "network")); err != nil {
		t.Error(err)
	}
}
