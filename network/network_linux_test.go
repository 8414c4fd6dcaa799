package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network/nft"
)

func testCtx(t testing.TB) context.Context {
	// A bound against hangs, not a threshold: every step is event-driven.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// assertDetached checks that nothing of ep is left.
func assertDetached(t *testing.T, m *Manager, ep *Endpoint) {
	t.Helper()
	if linkExists(ep.HostVeth) {
		t.Errorf("veth %s left after detach", ep.HostVeth)
	}
	if _, err := os.Stat(m.endpointFile(ep.NetworkID, ep.ContainerID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoint record (address %s) left after detach: %v", ep.IP, err)
	}
	if n, err := nft.New(m.opts.Table).Count(ep.owner()); err != nil || n != 0 {
		t.Errorf("%d nftables rules of %s left (%v)", n, ep.ContainerID, err)
	}
}

func TestUserNetworkByIPNameAndAlias(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	n, err := m.Create(ctx, CreateOptions{Name: "appnet", Labels: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	nsA, nsB := testNetns(t), testNetns(t)
	a, err := m.Attach(ctx, "aaaa"+randHex(30), nsA, AttachRequest{Network: "appnet", Name: "alpha", Aliases: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Attach(ctx, "bbbb"+randHex(30), nsB, AttachRequest{Network: n.ID[:6], Name: "beta"})
	if err != nil {
		t.Fatal(err)
	}
	if a.IP == b.IP || !n.Subnet.Contains(a.IP) || a.Gateway != n.Gateway || !a.DNSServer.IsValid() {
		t.Fatalf("endpoints: %+v %+v on %s", a, b, n.Subnet)
	}
	echo(listenIn(t, nsA, "tcp4", ":8080"), "alpha:")
	res := resolverIn(nsB, b.DNSServer)
	for _, host := range []string{a.IP.String(), "alpha", "db", "ALPHA", a.ContainerID[:12]} {
		addrs, err := res.LookupHost(ctx, host)
		if err != nil || len(addrs) != 1 || addrs[0] != a.IP.String() {
			t.Fatalf("resolve %s from beta: %v, %v", host, addrs, err)
		}
		c, err := dialIn(ctx, nsB, "tcp4", net.JoinHostPort(addrs[0], "8080"))
		if err != nil {
			t.Fatalf("dial %s: %v", host, err)
		}
		if got, err := roundTrip(c, "hi"); err != nil || got != "alpha:hi" {
			t.Fatalf("talk to %s: %q, %v", host, got, err)
		}
	}
	if _, err := res.LookupHost(ctx, "nosuchcontainer"); err == nil {
		t.Error("an unknown name resolved")
	}
	// Names follow containers: once alpha is detached, no one answers for it.
	if err := m.Detach(ctx, a.ContainerID); err != nil {
		t.Fatal(err)
	}
	assertDetached(t, m, a)
	if addrs, err := res.LookupHost(ctx, "alpha"); err == nil {
		t.Errorf("alpha still resolves after detach: %v", addrs)
	}
	// The files a container gets.
	dir := t.TempDir()
	host := filepath.Join(dir, "host-resolv.conf")
	os.WriteFile(host, []byte("nameserver 127.0.0.53\nnameserver 10.255.255.53\nsearch example.org\n"), 0o644)
	if err := WriteFiles(dir, Files{Hostname: "bbbb", Names: []string{"beta"}, Endpoints: []*Endpoint{b},
		ExtraHosts: []string{"gw:host-gateway", "db.local:10.0.0.9"}, HostResolvConf: host}); err != nil {
		t.Fatal(err)
	}
	hosts, _ := os.ReadFile(filepath.Join(dir, "hosts"))
	for _, want := range []string{"127.0.0.1\tlocalhost\n", b.IP.String() + "\tbbbb beta\n", n.Gateway.String() + "\tgw\n", "10.0.0.9\tdb.local\n"} {
		if !strings.Contains(string(hosts), want) {
			t.Errorf("hosts lacks %q:\n%s", want, hosts)
		}
	}
	resolv, _ := os.ReadFile(filepath.Join(dir, "resolv.conf"))
	if want := "nameserver " + n.Gateway.String() + "\nsearch example.org\n"; string(resolv) != want {
		t.Errorf("resolv.conf = %q, want %q", resolv, want)
	}
	if hn, _ := os.ReadFile(filepath.Join(dir, "hostname")); string(hn) != "bbbb\n" {
		t.Errorf("hostname = %q", hn)
	}
	// The last container takes the resolver with it, not the bridge, and
	// the network can go, with its bridge.
	if err := m.Remove(ctx, "appnet"); !errors.Is(err, errdefs.ErrInUse) {
		t.Errorf("remove network in use: %v", err)
	}
	pidFile := filepath.Join(m.stateDir(n.ID), dnsPidFile)
	pid, running := readPidFile(pidFile)
	if !running {
		t.Error("no resolver running")
	}
	if err := m.Detach(ctx, b.ContainerID); err != nil {
		t.Fatal(err)
	}
	assertDetached(t, m, b)
	if !linkExists(n.Bridge) {
		t.Errorf("bridge %s deleted by the last detach: it stays until network rm", n.Bridge)
	}
	if _, err := procStart(pid); err == nil {
		t.Errorf("resolver %d still running after the last detach", pid)
	}
	if err := m.Remove(ctx, "appnet"); err != nil {
		t.Fatal(err)
	}
	if linkExists(n.Bridge) {
		t.Errorf("bridge %s left after network rm", n.Bridge)
	}
	if _, err := m.Get(ctx, "appnet"); !errdefs.IsNotFound(err) {
		t.Errorf("Get after remove: %v", err)
	}
	if c, _ := nft.New(m.opts.Table).Count(netOwner(n)); c != 0 {
		t.Errorf("%d rules of the network left", c)
	}
}

func freeHostPort(t *testing.T, proto string) uint16 {
	t.Helper()
	p, err := freePort(PortMapping{Proto: proto, HostIP: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublishedPorts(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	tcpPort, udpPort := freeHostPort(t, "tcp"), freeHostPort(t, "udp")
	ports, err := ParsePorts([]string{fmt.Sprintf("127.0.0.1:%d:80", tcpPort), fmt.Sprintf("%d:53/udp", udpPort), "7000"})
	if err != nil {
		t.Fatal(err)
	}
	nsA, nsB := testNetns(t), testNetns(t)
	a, err := m.Attach(ctx, "a"+randHex(31), nsA, AttachRequest{Name: "web", Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ports[2].HostPort == 0 || a.Ports[0].HostPort != tcpPort {
		t.Fatalf("ports: %v", a.Ports)
	}
	if a.DNSServer.IsValid() {
		t.Error("the default network has a resolver (Docker's has none)")
	}
	// An HTTP server inside the container.
	ln := listenIn(t, nsA, "tcp4", ":80")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello from") {
			t.Fatalf("GET %s: %d %q", url, resp.StatusCode, body)
		}
	}
	get(fmt.Sprintf("http://127.0.0.1:%d/", tcpPort))
	// A UDP echo server; its port is published on every address.
	pc := func() net.PacketConn {
		var pc net.PacketConn
		if err := inNetns(nsA, func() (err error) { pc, err = net.ListenPacket("udp4", ":53"); return err }); err != nil {
			t.Fatal(err)
		}
		return pc
	}()
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("udp:"), buf[:n]...), from)
		}
	}()
	udpTo := func(addr string) {
		t.Helper()
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 64)
		// Datagrams may be lost: a bounded number of tries, each waiting
		// for its answer.
		for i := 0; i < 5; i++ {
			c.Write([]byte("ping"))
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := c.Read(buf); err == nil {
				if got := string(buf[:n]); got != "udp:ping" {
					t.Fatalf("udp %s: %q", addr, got)
				}
				return
			}
		}
		t.Fatalf("no UDP answer through %s", addr)
	}
	udpTo(fmt.Sprintf("127.0.0.1:%d", udpPort))
	// Another address of the host: the bridge's (which this test made).
	udpTo(fmt.Sprintf("%s:%d", a.Gateway, udpPort))
	// From another container, through the host's address (hairpin).
	if _, err := m.Attach(ctx, "b"+randHex(31), nsB, AttachRequest{}); err != nil {
		t.Fatal(err)
	}
	c, err := dialIn(ctx, nsB, "tcp4", fmt.Sprintf("%s:%d", a.Gateway, a.Ports[2].HostPort))
	if err == nil {
		c.Close()
		t.Error("connected to a published port nothing listens on")
	}
	echo(listenIn(t, nsA, "tcp4", ":7000"), "7000:")
	c, err = dialIn(ctx, nsB, "tcp4", fmt.Sprintf("%s:%d", a.Gateway, a.Ports[2].HostPort))
	if err != nil {
		t.Fatalf("container to published port: %v", err)
	}
	if got, err := roundTrip(c, "x"); err != nil || got != "7000:x" {
		t.Fatalf("container to published port: %q, %v", got, err)
	}
	if err := m.Detach(ctx, a.ContainerID); err != nil {
		t.Fatal(err)
	}
	assertDetached(t, m, a)
	if _, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", tcpPort), 2*time.Second); err == nil {
		t.Error("published port still answers after detach")
	}
}

func TestTakenHostPortChangesNothing(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	ns := testNetns(t)
	// A host socket holds the port.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ports, _ := ParsePorts([]string{"127.0.0.1:" + strconv.Itoa(port) + ":80"})
	id := "c" + randHex(31)
	_, err = m.Attach(ctx, id, ns, AttachRequest{Ports: ports})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "already allocated") {
		t.Fatalf("attach on a taken port: %v", err)
	}
	def, _ := m.Get(ctx, DefaultNetwork)
	if eps, _ := m.endpoints(def.ID); len(eps) != 0 {
		t.Errorf("endpoints after a refused attach: %v", eps)
	}
	if linkExists(def.Bridge) || linkExists(vethName(id, def.ID)) {
		t.Error("links made by a refused attach")
	}
	// A port published by another container is taken too.
	free := freeHostPort(t, "tcp")
	ports, _ = ParsePorts([]string{strconv.Itoa(int(free)) + ":80"})
	first, err := m.Attach(ctx, "d"+randHex(31), ns, AttachRequest{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	ns2 := testNetns(t)
	ports, _ = ParsePorts([]string{"127.0.0.1:" + strconv.Itoa(int(free)) + ":81"})
	if _, err := m.Attach(ctx, "e"+randHex(31), ns2, AttachRequest{Ports: ports}); !errdefs.IsConflict(err) {
		t.Fatalf("second publication of %d: %v", free, err)
	}
	if eps, _ := m.endpoints(def.ID); len(eps) != 1 {
		t.Errorf("%d endpoints, want 1", len(eps))
	}
	// Attaching the same container twice, or to a missing network.
	if _, err := m.Attach(ctx, first.ContainerID, ns, AttachRequest{}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("double attach: %v", err)
	}
	if _, err := m.Attach(ctx, "f"+randHex(31), ns2, AttachRequest{Network: "missing"}); !errdefs.IsNotFound(err) {
		t.Errorf("missing network: %v", err)
	}
	if _, err := m.Attach(ctx, "f"+randHex(31), ns2, AttachRequest{IP: first.IP.String()}); !errdefs.IsConflict(err) {
		t.Errorf("--ip of another container: %v", err)
	}
	if _, err := m.Attach(ctx, "f"+randHex(31), ns2, AttachRequest{Network: HostNetwork}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("attach to host: %v", err)
	}
}

func TestFiftyContainers(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	if _, err := m.Create(ctx, CreateOptions{Name: "fifty", Subnet: "10.232.200.0/24"}); err != nil {
		t.Fatal(err)
	}
	type ctr struct {
		ns string
		ep *Endpoint
	}
	var cs []ctr
	for i := range 50 {
		ns := testNetns(t)
		ep, err := m.Attach(ctx, fmt.Sprintf("%064d", i), ns, AttachRequest{Network: "fifty", Name: fmt.Sprintf("c%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		echo(listenIn(t, ns, "tcp4", ":9000"), strconv.Itoa(i)+":")
		cs = append(cs, ctr{ns, ep})
	}
	seen := map[netip.Addr]bool{}
	for i, c := range cs {
		if seen[c.ep.IP] {
			t.Fatalf("address %s given twice", c.ep.IP)
		}
		seen[c.ep.IP] = true
		// From the host, and from the first container by name.
		conn, err := net.Dial("tcp4", net.JoinHostPort(c.ep.IP.String(), "9000"))
		if err != nil {
			t.Fatalf("host to c%d: %v", i, err)
		}
		if got, err := roundTrip(conn, "h"); err != nil || got != fmt.Sprintf("%d:h", i) {
			t.Fatalf("host to c%d: %q %v", i, got, err)
		}
		addrs, err := resolverIn(cs[0].ns, cs[0].ep.DNSServer).LookupHost(ctx, fmt.Sprintf("c%d", i))
		if err != nil || len(addrs) != 1 {
			t.Fatalf("resolve c%d: %v %v", i, addrs, err)
		}
		conn, err = dialIn(ctx, cs[0].ns, "tcp4", net.JoinHostPort(addrs[0], "9000"))
		if err != nil {
			t.Fatalf("c0 to c%d: %v", i, err)
		}
		if got, err := roundTrip(conn, "c"); err != nil || got != fmt.Sprintf("%d:c", i) {
			t.Fatalf("c0 to c%d: %q %v", i, got, err)
		}
	}
	for _, c := range cs {
		if err := m.Detach(ctx, c.ep.ContainerID); err != nil {
			t.Fatal(err)
		}
		assertDetached(t, m, c.ep)
	}
	n, _ := m.Get(ctx, "fifty")
	if !linkExists(n.Bridge) {
		t.Error("bridge gone before network rm")
	}
	if err := m.Remove(ctx, "fifty"); err != nil {
		t.Fatal(err)
	}
	if linkExists(n.Bridge) {
		t.Error("bridge left after network rm")
	}
}

// A container that died while nothing watched: its namespace is gone, and
// Reclaim, told so by the engine, frees its address and rules.
func TestReclaimDeadContainer(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	ns := testNetns(t)
	ports, _ := ParsePorts([]string{"127.0.0.1::80"})
	dead, err := m.Attach(ctx, "dead"+randHex(30), ns, AttachRequest{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	ns2 := testNetns(t)
	live, err := m.Attach(ctx, "live"+randHex(30), ns2, AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The namespace dies with its last process; deleting it takes the veth.
	runIP(t, "netns", "del", filepath.Base(ns))
	err = m.Reclaim(ctx, func(id string) bool { return id == live.ContainerID })
	if err != nil {
		t.Fatal(err)
	}
	assertDetached(t, m, dead)
	eps, _ := m.ContainerEndpoints(ctx, live.ContainerID)
	if len(eps) != 1 {
		t.Errorf("live container lost its endpoint: %v", eps)
	}
}

func TestCreateBadInput(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	if _, err := m.Create(ctx, CreateOptions{Name: "one", Subnet: "10.232.10.0/24"}); err != nil {
		t.Fatal(err)
	}
	before, _ := m.List(ctx)
	for _, tc := range []struct {
		o    CreateOptions
		want error
	}{
		{CreateOptions{Name: "two", Subnet: "10.232.10.128/25"}, errdefs.ErrConflict},
		{CreateOptions{Name: "two", Subnet: "10.232.0.0/16"}, errdefs.ErrConflict},
		{CreateOptions{Name: "one"}, errdefs.ErrAlreadyExists},
		{CreateOptions{Name: "bridge"}, errdefs.ErrAlreadyExists},
		{CreateOptions{Name: "two", Subnet: "10.232.11.1/24"}, errdefs.ErrInvalidArgument},
		{CreateOptions{Name: "two", Subnet: "10.232.11.0/24", Gateway: "10.232.12.1"}, errdefs.ErrInvalidArgument},
		{CreateOptions{Name: "two", Gateway: "10.232.12.1"}, errdefs.ErrInvalidArgument},
		{CreateOptions{Name: "bad name"}, errdefs.ErrInvalidArgument},
		{CreateOptions{Name: "two", Driver: "macvlan"}, errdefs.ErrInvalidArgument},
	} {
		if _, err := m.Create(ctx, tc.o); !errors.Is(err, tc.want) {
			t.Errorf("Create(%+v) = %v, want %v", tc.o, err, tc.want)
		}
	}
	after, _ := m.List(ctx)
	if len(after) != len(before) {
		t.Errorf("bad input changed the networks: %d, then %d", len(before), len(after))
	}
	auto, err := m.Create(ctx, CreateOptions{Name: "auto"})
	if err != nil || auto.Subnet.String() != "10.232.0.0/24" || auto.Gateway.String() != "10.232.0.1" {
		t.Errorf("auto subnet: %+v, %v", auto, err)
	}
	for _, name := range []string{"bridge", "host", "none"} {
		if err := m.Remove(ctx, name); !errdefs.IsInvalidArgument(err) {
			t.Errorf("remove %s: %v", name, err)
		}
	}
	if err := m.Remove(ctx, "missing"); !errdefs.IsNotFound(err) {
		t.Errorf("remove missing: %v", err)
	}
	removed, err := m.Prune(ctx, func(n *Network) bool { return n.Name == "one" })
	if err != nil || len(removed) != 1 || removed[0] != "auto" {
		t.Errorf("prune: %v, %v", removed, err)
	}
}

// Attaches racing each other (as parallel `berth run`s do, each holding
// the lock file in turn) never share an address.
func TestConcurrentAttach(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	const n = 20
	nss := make([]string, n)
	for i := range nss {
		nss[i] = testNetns(t)
	}
	eps := make([]*Endpoint, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			eps[i], err = m.Attach(ctx, fmt.Sprintf("%064d", i+1), nss[i], AttachRequest{Ports: []PortMapping{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 80}}})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ips, ports := map[netip.Addr]bool{}, map[uint16]bool{}
	for _, e := range eps {
		if ips[e.IP] || ports[e.Ports[0].HostPort] {
			t.Fatalf("address %s or port %d given twice", e.IP, e.Ports[0].HostPort)
		}
		ips[e.IP], ports[e.Ports[0].HostPort] = true, true
	}
	for _, e := range eps {
		if err := m.Detach(ctx, e.ContainerID); err != nil {
			t.Fatal(err)
		}
		assertDetached(t, m, e)
	}
}

// waitLinkGone waits, a bounded time, for the kernel to delete a link with
// its namespace: cleanup_net runs in a work queue, after the namespace's
// last reference goes. A bound against hangs, not a threshold.
func waitLinkGone(name string) bool {
	for range 500 {
		if !linkExists(name) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Release frees a container's address, rules and record at once, takes its
// veth off the bridge and leaves the pair to the kernel, which deletes it
// with the namespace. The same container can attach again before the
// kernel has.
func TestReleaseLeavesVethToNamespace(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	ports, _ := ParsePorts([]string{"127.0.0.1::80"})
	id := "rel" + randHex(30)
	ns := testNetns(t)
	ep, err := m.Attach(ctx, id, ns, AttachRequest{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := m.Get(ctx, DefaultNetwork)
	if err := m.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.endpointFile(ep.NetworkID, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoint record left after Release: %v", err)
	}
	if n, err := nft.New(m.opts.Table).Count(ep.owner()); err != nil || n != 0 {
		t.Errorf("%d rules left after Release (%v)", n, err)
	}
	if st, err := os.ReadFile("/sys/class/net/" + ep.HostVeth + "/brport/state"); err != nil || strings.TrimSpace(string(st)) != "0" {
		t.Errorf("veth %s: bridge port state %q (%v) after Release, want 0 (disabled)", ep.HostVeth, st, err)
	}
	if !linkExists(def.Bridge) {
		t.Errorf("bridge %s deleted with its last container", def.Bridge)
	}
	// The namespace still lives (its file is mounted): the veth too. The
	// same container attaches again, to a new namespace, over it.
	ns2 := testNetns(t)
	ep2, err := m.Attach(ctx, id, ns2, AttachRequest{Ports: ports})
	if err != nil {
		t.Fatalf("attach again with the old veth still there: %v", err)
	}
	if err := m.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	runIP(t, "netns", "del", filepath.Base(ns2))
	if !waitLinkGone(ep2.HostVeth) {
		t.Errorf("veth %s left after its namespace was deleted", ep2.HostVeth)
	}
	assertDetached(t, m, ep2)
}

// A bridge whose network file is gone (its data root removed without
// network rm) is deleted, with its rules, when another bridge is made.
func TestOrphanBridgeSwept(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	n, err := m.Create(ctx, CreateOptions{Name: "orphan"})
	if err != nil {
		t.Fatal(err)
	}
	id := "orph" + randHex(30)
	if _, err := m.Attach(ctx, id, testNetns(t), AttachRequest{Network: "orphan"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !linkExists(n.Bridge) {
		t.Fatalf("bridge %s not kept", n.Bridge)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(n.Bridge); err == nil {
			netlink.LinkDel(l)
		}
	})
	// The data root goes, and nobody said network rm.
	if err := os.Remove(m.netFile(n.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "next"+randHex(30), testNetns(t), AttachRequest{}); err != nil {
		t.Fatal(err)
	}
	if linkExists(n.Bridge) {
		t.Errorf("orphan bridge %s not swept", n.Bridge)
	}
	if c, _ := nft.New(m.opts.Table).Count(netOwner(n)); c != 0 {
		t.Errorf("%d rules of the orphan network left", c)
	}
}

// A host port range with one container port publishes on the range's first
// port that is free: neither published by another container nor bound by
// a socket of the host; a range with none free is a conflict.
func TestPublishHostPortRange(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	var held net.Listener
	var base int
	for range 20 { // a base whose next two ports are free now
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		if p < 65530 && probePort(PortMapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: uint16(p + 1), Proto: "tcp"}) == nil &&
			probePort(PortMapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: uint16(p + 2), Proto: "tcp"}) == nil {
			held, base = ln, p
			break
		}
		ln.Close()
	}
	if held == nil {
		t.Skip("no three free consecutive ports on 127.0.0.1")
	}
	defer held.Close()
	spec := fmt.Sprintf("127.0.0.1:%d-%d:80", base, base+2)
	ports, err := ParsePorts([]string{spec})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckPorts(ctx, ports); err != nil {
		t.Errorf("CheckPorts(%s) with two ports free: %v", spec, err)
	}
	a, err := m.Attach(ctx, "rngA"+randHex(28), testNetns(t), AttachRequest{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Attach(ctx, "rngB"+randHex(28), testNetns(t), AttachRequest{Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Ports) != 1 || a.Ports[0].HostPort != uint16(base+1) || a.Ports[0].HostPortEnd != 0 {
		t.Errorf("first container: %v, want %d (the range's first port is the host's)", a.Ports, base+1)
	}
	if len(b.Ports) != 1 || b.Ports[0].HostPort != uint16(base+2) {
		t.Errorf("second container: %v, want %d", b.Ports, base+2)
	}
	if err := m.CheckPorts(ctx, ports); !errdefs.IsConflict(err) {
		t.Errorf("CheckPorts(%s) with the range taken: %v, want a conflict", spec, err)
	}
	if _, err := m.Attach(ctx, "rngC"+randHex(28), testNetns(t), AttachRequest{Ports: ports}); !errdefs.IsConflict(err) {
		t.Errorf("a third container on the full range: %v, want a conflict", err)
	}
	for _, ep := range []*Endpoint{a, b} {
		if err := m.Detach(ctx, ep.ContainerID); err != nil {
			t.Fatal(err)
		}
	}
}
