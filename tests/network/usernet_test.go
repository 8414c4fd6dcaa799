package network

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Two containers of a user network talk TCP by name and by alias, through
// the resolver that the berth binary serves (`berth network dns-serve`);
// an alias stops resolving when its container is removed.
func TestUserNetworkNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := freeSubnet(t)
	id := strings.TrimSpace(e.b.MustRun("network", "create", "--subnet", sub.String(), "app").Stdout)
	e.b.MustRun(append([]string{"run", "-d", "--name", "srv", "--network", "app", "--network-alias", "db", "busybox"}, webCmd(80)...)...)
	e.b.MustRun("run", "-d", "--name", "cli", "--network", "app", "busybox", "sleep", "600")
	srv := e.inspect("srv")[0]

	// The resolver is the berth binary itself, serving the network's state.
	pids, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	found := false
	for _, p := range pids {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if len(args) >= 4 && args[0] == e.b.Bin && args[1] == "network" && args[2] == "dns-serve" && strings.Contains(args[3], id) {
			found = true
		}
	}
	if !found {
		t.Errorf("no `%s network dns-serve` process for network %s", e.b.Bin, id)
	}
	resolv := e.b.MustRun("exec", "cli", "cat", "/etc/resolv.conf").Stdout
	if !strings.Contains(resolv, "nameserver "+addr(sub, 1).String()+"\n") {
		t.Errorf("cli's resolv.conf does not name the network's resolver %s:\n%s", addr(sub, 1), resolv)
	}
	for _, name := range []string{"srv", "db"} {
		res := e.b.Run("exec", "cli", "sh", "-c", fetchIn("http://"+name+"/hostname"))
		if strings.TrimSpace(res.Stdout) != srv.Config.Hostname {
			t.Errorf("GET http://%s/hostname from cli: want %q, got %s", name, srv.Config.Hostname, res)
		}
	}
	// nc: a raw TCP exchange by alias.
	res := e.b.Run("exec", "cli", "sh", "-c", `printf 'GET /hostname HTTP/1.0\r\n\r\n' | timeout 5 nc db 80`)
	if !strings.Contains(res.Stdout, "200 OK") || !strings.Contains(res.Stdout, srv.Config.Hostname) {
		t.Errorf("nc db 80 from cli: %s", res)
	}
	if res := e.b.Run("exec", "cli", "nslookup", "db"); res.Code != 0 || !strings.Contains(res.Stdout, srv.NetworkSettings.IPAddress) {
		t.Errorf("nslookup db: want %s, got %s", srv.NetworkSettings.IPAddress, res)
	}

	traces := e.traceOf("srv", false)
	e.b.MustRun("rm", "-f", "srv")
	e.checkGone(traces)
	for _, name := range []string{"db", "srv"} {
		if res := e.b.Run("exec", "cli", "nslookup", name); res.Code == 0 || !strings.Contains(res.Stdout+res.Stderr, "NXDOMAIN") {
			t.Errorf("nslookup %s after srv is removed: want NXDOMAIN, got %s", name, res)
		}
	}
	// A new container takes the alias over.
	e.b.MustRun("run", "-d", "--name", "srv2", "--network", "app", "--network-alias", "db", "busybox", "sleep", "600")
	srv2 := e.inspect("srv2")[0]
	if res := e.b.Run("exec", "cli", "nslookup", "db"); !strings.Contains(res.Stdout, srv2.NetworkSettings.IPAddress) {
		t.Errorf("nslookup db after srv2 took it: want %s, got %s", srv2.NetworkSettings.IPAddress, res)
	}
	// Aliases are for user networks only, as in Docker.
	e.mustFail("network-scoped aliases", "run", "--rm", "--network-alias", "x", "busybox", "true")

	// The bridge outlives the last container; network rm takes it.
	e.b.MustRun("rm", "-f", "cli", "srv2")
	br := "br-" + id[:12]
	if !linkExists(br) {
		t.Errorf("bridge %s deleted with the network's last container: it stays until network rm", br)
	}
	e.b.MustRun("network", "rm", "app")
	if linkExists(br) {
		t.Errorf("bridge %s is left after network rm", br)
	}
	if strings.Contains(nftTable(t), "net:"+id[:12]) {
		t.Errorf("rules of network app left after network rm:\n%s", nftTable(t))
	}
	if _, err := os.Stat(filepath.Join(e.b.RunRoot, "network", id)); !os.IsNotExist(err) {
		t.Errorf("network state of app is left after network rm (stat: %v)", err)
	}
}

// 50 containers on one network: each answers, with its own host name,
// from the first of them.
func TestFiftyContainers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := freeSubnet(t)
	e.b.MustRun("network", "create", "--subnet", sub.String(), "many")
	const n = 50
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
		e.b.MustRun(append([]string{"run", "-d", "--name", names[i], "--network", "many", "busybox"}, webCmd(80)...)...)
	}
	cs := e.inspect(names...)
	var script strings.Builder
	for _, c := range cs {
		// Bounded: at most 10 tries of 3 s per container.
		fmt.Fprintf(&script, "h=; for i in $(seq 10); do h=$(timeout 3 wget -q -O - http://%s/hostname) && break; sleep 0.2; done; echo \"${h:-unreachable}\"\n", c.NetworkSettings.Networks["many"].IPAddress)
	}
	res := e.b.MustRun("exec", "c0", "sh", "-c", script.String())
	lines := strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n")
	for i, c := range cs {
		var got string
		if i < len(lines) {
			got = strings.TrimSpace(lines[i])
		}
		if got != c.Config.Hostname {
			t.Errorf("%s (%s) from c0: got %q, want its host name %q", names[i], c.NetworkSettings.Networks["many"].IPAddress, got, c.Config.Hostname)
		}
	}
	// By name too, for a few.
	for _, i := range []int{1, 25, 49} {
		if got := strings.TrimSpace(e.b.Run("exec", "c0", "sh", "-c", fetchIn("http://"+names[i]+"/hostname")).Stdout); got != cs[i].Config.Hostname {
			t.Errorf("http://%s/hostname from c0: %q, want %q", names[i], got, cs[i].Config.Hostname)
		}
	}
	var traces []trace
	for _, name := range names {
		traces = append(traces, e.traceOf(name, false)...)
	}
	e.b.MustRun(append([]string{"rm", "-f"}, names...)...)
	e.checkGone(traces)
}

// network connect and disconnect of a running container.
func TestConnectDisconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := freeSubnet(t)
	e.b.MustRun("network", "create", "--subnet", sub.String(), "side")
	e.b.MustRun(append([]string{"run", "-d", "--name", "a", "busybox"}, webCmd(80)...)...)
	e.b.MustRun("run", "-d", "--name", "b", "--network", "side", "busybox", "sleep", "600")
	a := e.inspect("a")[0]
	br := "br-" + e.inspect("b")[0].NetworkSettings.Networks["side"].NetworkID[:12]
	brMAC := bridgeMAC(t, br)

	ip := addr(sub, 50)
	e.b.MustRun("network", "connect", "--ip", ip.String(), "--alias", "web", "side", "a")
	if out := e.b.MustRun("exec", "a", "ip", "-o", "-4", "addr", "show", "eth1").Stdout; !strings.Contains(out, " "+ip.String()+"/24 ") {
		t.Errorf("a's eth1 after connect --ip %s:\n%s", ip, out)
	}
	got := e.inspect("a")[0].NetworkSettings.Networks
	if got["side"] == nil || got["side"].IPAddress != ip.String() || !slices.Contains(got["side"].Aliases, "web") || got["bridge"] == nil {
		t.Errorf("a's networks after connect: %s", mustJSON(got))
	}
	for _, name := range []string{"a", "web"} {
		if res := e.b.Run("exec", "b", "sh", "-c", fetchIn("http://"+name+"/hostname")); strings.TrimSpace(res.Stdout) != a.Config.Hostname {
			t.Errorf("b: GET http://%s/hostname: want %q, got %s", name, a.Config.Hostname, res)
		}
	}
	// a now resolves b through side's resolver.
	if res := e.b.Run("exec", "a", "nslookup", "b"); res.Code != 0 || !strings.Contains(res.Stdout, e.inspect("b")[0].NetworkSettings.IPAddress) {
		t.Errorf("a: nslookup b after connect: %s", res)
	}
	var nr []struct {
		Containers map[string]struct{ Name, IPv4Address string }
	}
	if err := json.Unmarshal([]byte(e.b.MustRun("network", "inspect", "side").Stdout), &nr); err != nil || len(nr) != 1 {
		t.Fatalf("network inspect side: %v", err)
	}
	if c, ok := nr[0].Containers[a.ID]; !ok || c.Name != "a" || c.IPv4Address != ip.String()+"/24" {
		t.Errorf("network inspect side: Containers = %+v", nr[0].Containers)
	}
	e.mustFail("already attached", "network", "connect", "side", "a")

	traces := e.traceOf("a", false)
	var sideTrace []trace
	for _, tr := range traces {
		if tr.netID != e.inspect("a")[0].NetworkSettings.Networks["bridge"].NetworkID {
			sideTrace = append(sideTrace, tr)
		}
	}
	e.b.MustRun("network", "disconnect", "side", "a")
	e.checkGone(sideTrace)
	if out := e.b.MustRun("exec", "a", "ip", "-o", "link").Stdout; slices.Contains(linkNames(out), "eth1") {
		t.Errorf("a still has eth1 after disconnect:\n%s", out)
	}
	if got := e.inspect("a")[0].NetworkSettings.Networks; got["side"] != nil || got["bridge"] == nil {
		t.Errorf("a's networks after disconnect: %s", mustJSON(got))
	}
	if res := e.b.Run("exec", "b", "nslookup", "web"); res.Code == 0 {
		t.Errorf("b: web still resolves after a's disconnect: %s", res)
	}
	// b lost nothing when a left: the gateway kept its MAC (a bridge
	// without one of its own takes its lowest port's, and changes it when
	// that port goes), and it and its resolver answer.
	if got := bridgeMAC(t, br); got != brMAC {
		t.Errorf("bridge %s changed its MAC from %s to %s while a came and went", br, brMAC, got)
	}
	if res := e.b.Run("exec", "b", "nslookup", "b"); res.Code != 0 {
		t.Errorf("b: nslookup b after a left the network: %s", res)
	}
	e.mustFail("is not connected to network side", "network", "disconnect", "side", "a")

	// A stopped container, and the modes without a network of berth's.
	e.b.MustRun("run", "-d", "--name", "none", "--network", "none", "busybox", "sleep", "600")
	e.mustFail("private (none) mode", "network", "connect", "side", "none")
	e.mustFail("No such container", "network", "connect", "side", "nosuch")
}

// `network connect` of a stopped container applies when it starts, and at
// every start after, as Docker's does, until `network disconnect`; the
// network cannot be removed meanwhile.
func TestConnectStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.b.MustRun("network", "create", "later")
	e.b.MustRun("run", "-d", "--name", "peer", "--network", "later", "busybox", "sleep", "600")
	e.b.MustRun("create", "--name", "s", "busybox", "sleep", "600")
	e.b.MustRun("network", "connect", "--alias", "sa", "later", "s")
	if got := e.inspect("s")[0].NetworkSettings.Networks; got["later"] == nil || !slices.Contains(got["later"].Aliases, "sa") {
		t.Errorf("s's networks after connect while stopped: %s", mustJSON(got))
	}
	e.mustFail("already connected", "network", "connect", "later", "s")
	e.mustFail("invalid IPv4 address", "network", "connect", "--ip", "nonsense", "later", "s")
	for round := range 2 { // the first start, and one after a stop
		e.b.MustRun("start", "s")
		if out := e.b.MustRun("exec", "s", "ip", "-o", "link").Stdout; !slices.Equal(linkNames(out), []string{"eth0", "eth1", "lo"}) {
			t.Errorf("start %d: s's links %q, want eth0 (bridge), eth1 (later), lo\n%s", round, linkNames(out), out)
		}
		ip := e.inspect("s")[0].NetworkSettings.Networks["later"]
		if ip == nil || ip.IPAddress == "" {
			t.Fatalf("start %d: s has no address on later: %s", round, mustJSON(e.inspect("s")[0].NetworkSettings.Networks))
		}
		for _, name := range []string{"s", "sa"} {
			if res := e.b.Run("exec", "peer", "nslookup", name); res.Code != 0 || !strings.Contains(res.Stdout, ip.IPAddress) {
				t.Errorf("start %d: peer: nslookup %s, want %s: %s", round, name, ip.IPAddress, res)
			}
		}
		e.b.MustRun("stop", "-t", "0", "s")
	}
	e.b.MustRun("network", "disconnect", "later", "s")
	if got := e.inspect("s")[0].NetworkSettings.Networks; got["later"] != nil {
		t.Errorf("s's networks after disconnect while stopped: %s", mustJSON(got))
	}
	e.mustFail("is not connected to network later", "network", "disconnect", "later", "s")
	e.b.MustRun("start", "s")
	if out := e.b.MustRun("exec", "s", "ip", "-o", "link").Stdout; slices.Contains(linkNames(out), "eth1") {
		t.Errorf("s has eth1 after disconnect while stopped:\n%s", out)
	}
	// A stopped container's connection holds the network; a removed
	// container's does not.
	e.b.MustRun("rm", "-f", "s", "peer")
	tid := strings.TrimSpace(e.b.MustRun("create", "--name", "t", "busybox", "true").Stdout)
	e.b.MustRun("network", "connect", "later", "t")
	kept := filepath.Join(e.b.Root, "network", "connections", tid+".json")
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("the connection of a stopped container is not kept: %v", err)
	}
	e.mustFail("has containers connected", "network", "rm", "later")
	e.b.MustRun("rm", "-f", "t")
	if _, err := os.Stat(kept); !os.IsNotExist(err) {
		t.Errorf("rm left the container's kept connections: %v", err)
	}
	e.b.MustRun("network", "rm", "later")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// bridgeMAC returns a bridge's MAC address, after checking it is one the
// bridge was given (addr_assign_type NET_ADDR_SET), which the kernel never
// changes as ports come and go.
func bridgeMAC(t *testing.T, br string) string {
	t.Helper()
	typ, err := os.ReadFile(filepath.Join("/sys/class/net", br, "addr_assign_type"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(typ)) != "3" {
		t.Errorf("bridge %s: addr_assign_type %s, want 3 (set): its MAC follows its ports", br, typ)
	}
	mac, err := os.ReadFile(filepath.Join("/sys/class/net", br, "address"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(mac))
}
