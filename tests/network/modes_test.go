package network

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
)

// linkNames parses `ip -o link` output into interface names.
func linkNames(out string) []string {
	var names []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func TestNetworkNone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.b.MustRun("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
	if got := linkNames(res.Stdout); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("--network none: links %q, want only lo\n%s", got, res.Stdout)
	}
	// Without --network: lo and eth0.
	res = e.b.MustRun("run", "--rm", "busybox", "ip", "-o", "link")
	if got := linkNames(res.Stdout); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("default network: links %q, want eth0 and lo\n%s", got, res.Stdout)
	}
	e.mustFail("published ports need a bridge or user network", "run", "--rm", "--network", "none", "-p", "80", "busybox", "true")
}

func TestNetworkHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.b.MustRun("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	got := linkNames(res.Stdout)
	// Other tests add and remove links meanwhile: the host's own
	// interfaces (not berth's) must all be there.
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "vb") || strings.HasPrefix(i.Name, "bt") || strings.HasPrefix(i.Name, "br-") {
			continue
		}
		if !slices.Contains(got, i.Name) {
			t.Errorf("--network host: the host's %s is missing from %q", i.Name, got)
		}
	}
	if !slices.Contains(got, "eth0") || len(got) < 2 {
		t.Errorf("--network host: links %q", got)
	}
}

// --network container:x shares x's stack: the same address, and x's
// listener on 127.0.0.1.
func TestNetworkContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.b.MustRun("run", "-d", "--name", "x", "busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc")
	x := e.inspect("x")[0]
	script := "ip -o -4 addr show eth0; " + fetchIn("http://127.0.0.1:8080/hostname")
	res := e.b.MustRun("run", "--rm", "--network", "container:x", "busybox", "sh", "-c", script)
	if !strings.Contains(res.Stdout, " "+x.NetworkSettings.IPAddress+"/") {
		t.Errorf("container:x does not have x's address %s:\n%s", x.NetworkSettings.IPAddress, res.Stdout)
	}
	if !strings.HasSuffix(strings.TrimSpace(res.Stdout), x.Config.Hostname) {
		t.Errorf("container:x did not reach x's listener on 127.0.0.1:8080 (want %q):\n%s", x.Config.Hostname, res)
	}
	e.b.MustRun("stop", "-t", "0", "x")
	e.mustFail("non running container", "run", "--rm", "--network", "container:x", "busybox", "true")
	e.mustFail("No such container", "run", "--rm", "--network", "container:nosuch", "busybox", "true")
}

// --ip and --mac-address are what the container's eth0 has, and what
// inspect shows.
func TestIPAndMAC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := freeSubnet(t)
	e.b.MustRun("network", "create", "--subnet", sub.String(), "fixed")
	ip, mac := addr(sub, 77), "02:42:ab:cd:ef:01"
	res := e.b.MustRun("run", "--rm", "--name", "f", "--network", "fixed", "--ip", ip.String(), "--mac-address", mac,
		"busybox", "sh", "-c", "cat /sys/class/net/eth0/address; ip -o -4 addr show eth0")
	if !strings.HasPrefix(res.Stdout, mac+"\n") {
		t.Errorf("--mac-address %s: eth0 has\n%s", mac, res.Stdout)
	}
	if !strings.Contains(res.Stdout, fmt.Sprintf(" %s/24 ", ip)) {
		t.Errorf("--ip %s: eth0 has\n%s", ip, res.Stdout)
	}
	// On the default network too, and in inspect.
	dip := addr(e.subnet, 200)
	e.b.MustRun("run", "-d", "--name", "d", "--ip", dip.String(), "--mac-address", mac, "busybox", "sleep", "600")
	d := e.inspect("d")[0]
	if d.NetworkSettings.IPAddress != dip.String() || d.NetworkSettings.MacAddress != mac {
		t.Errorf("inspect: IPAddress %q MacAddress %q, want %s %s", d.NetworkSettings.IPAddress, d.NetworkSettings.MacAddress, dip, mac)
	}
	// The address is taken now.
	e.mustFail("already in use", "run", "--rm", "--ip", dip.String(), "busybox", "true")
	e.mustFail("not a free host address", "run", "--rm", "--ip", addr(e.subnet, 1).String(), "busybox", "true")
	e.mustFail("invalid MAC address", "run", "--rm", "--mac-address", "zz:42", "busybox", "true")
}

// --add-host, --dns, --dns-search and --hostname make the container's
// /etc/hosts, /etc/resolv.conf and /etc/hostname.
func TestEtcFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.b.MustRun("run", "--rm", "--name", "etc", "--hostname", "myhost",
		"--add-host", "db.test:10.1.2.3", "--add-host", "gw.test:host-gateway",
		"--dns", "10.9.9.9", "--dns-search", "example.test",
		"busybox", "sh", "-c", "cat /etc/hosts; echo ==; cat /etc/resolv.conf; echo ==; cat /etc/hostname; echo ==; hostname; ip -o -4 addr show eth0")
	parts := strings.Split(res.Stdout, "==\n")
	if len(parts) != 4 {
		t.Fatalf("output:\n%s", res.Stdout)
	}
	hosts, resolv, hostname, rest := parts[0], parts[1], parts[2], parts[3]
	gw := addr(e.subnet, 1)
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.1.2.3\tdb.test\n", gw.String() + "\tgw.test\n", "\tmyhost etc\n"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts lacks %q:\n%s", want, hosts)
		}
	}
	if ip := inetAddr(rest); ip == "" || !strings.Contains(hosts, ip+"\tmyhost etc\n") {
		t.Errorf("/etc/hosts does not name the container's address %q myhost:\n%s", ip, hosts)
	}
	if resolv != "nameserver 10.9.9.9\nsearch example.test\n" {
		t.Errorf("/etc/resolv.conf:\n%s", resolv)
	}
	if hostname != "myhost\n" || !strings.HasPrefix(rest, "myhost\n") {
		t.Errorf("/etc/hostname %q, hostname %q", hostname, rest)
	}
	e.mustFail("--add-host", "run", "--rm", "--add-host", "nocolon", "busybox", "true")
	e.mustFail("not an ip address", "run", "--rm", "--dns", "not-an-ip", "busybox", "true")
}

// inetAddr returns the address (without its length) that `ip -o -4 addr`
// output shows first.
func inetAddr(out string) string {
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			a, _, _ := strings.Cut(f[i+1], "/")
			return a
		}
	}
	return ""
}
