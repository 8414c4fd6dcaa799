package network

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A sandbox never mounted dies with its descriptors, its veth pair too.
func TestSandboxUnmountedLeavesNothing(t *testing.T) {
	s, err := NewSandbox()
	if err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName(s.HostVeth())
	if err != nil {
		t.Fatalf("sandbox's host veth: %v", err)
	}
	if l.Attrs().MasterIndex != 0 || l.Attrs().Flags&unix.IFF_UP != 0 {
		t.Errorf("a sandbox's host veth is down and on no bridge: %+v", l.Attrs())
	}
	s.Close()
	s.Close()
	if !waitLinkGone(s.HostVeth()) {
		t.Errorf("veth %s left after its unmounted sandbox was closed", s.HostVeth())
	}
}

// Attach with a sandbox configures the sandbox's veth: the container is
// reachable at its address, with its MAC, and Release and the unmount
// leave nothing.
func TestAttachSandbox(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	s, err := NewSandbox()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	path := filepath.Join(t.TempDir(), "netns")
	if err := s.Mount(path); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(path, unix.MNT_DETACH)
	ports, _ := ParsePorts([]string{"127.0.0.1::80"})
	id := "sbx" + randHex(30)
	ep, err := m.Attach(ctx, id, path, AttachRequest{Ports: ports, MAC: "02:42:aa:bb:cc:dd", Sandbox: s})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the mount keeps it
	if ep.HostVeth != s.HostVeth() || ep.Interface != "eth0" {
		t.Errorf("endpoint %s/%s, want the sandbox's veth %s and eth0", ep.HostVeth, ep.Interface, s.HostVeth())
	}
	def, _ := m.Get(ctx, DefaultNetwork)
	br, err := netlink.LinkByName(def.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := netlink.LinkByName(ep.HostVeth); err != nil || l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().Flags&unix.IFF_UP == 0 {
		t.Errorf("host veth %s not up on bridge %s: %v", ep.HostVeth, def.Bridge, err)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	ns.Close()
	if err != nil {
		t.Fatal(err)
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth.Attrs().HardwareAddr.String() != "02:42:aa:bb:cc:dd" {
		t.Errorf("eth0 MAC %s", eth.Attrs().HardwareAddr)
	}
	if a6, err := h.AddrList(eth, unix.AF_INET6); err != nil || len(a6) > 0 {
		t.Errorf("eth0 has IPv6 addresses %v (%v), want none on an IPv4 network", a6, err)
	}
	if hl, err := netlink.LinkByName(ep.HostVeth); err == nil {
		if a6, err := netlink.AddrList(hl, unix.AF_INET6); err != nil || len(a6) > 0 {
			t.Errorf("host veth %s has IPv6 addresses %v (%v)", ep.HostVeth, a6, err)
		}
	}
	routes, err := h.RouteList(nil, unix.AF_INET)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	def4 := false
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(ep.Gateway.AsSlice()) {
			def4 = true
		}
	}
	if !def4 {
		t.Errorf("no default route via %s in %v", ep.Gateway, routes)
	}
	ln := listenIn(t, path, "tcp4", ":7000")
	echo(ln, "sandbox:")
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", ep.IP.String()+":7000")
	if err != nil {
		t.Fatalf("dial the container at %s: %v", ep.IP, err)
	}
	if got, err := roundTrip(c, "hi"); err != nil || got != "sandbox:hi" {
		t.Errorf("round trip: %q, %v", got, err)
	}
	ln.Close()
	if err := m.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	unix.Unmount(path, unix.MNT_DETACH)
	os.Remove(path)
	if !waitLinkGone(ep.HostVeth) {
		t.Errorf("veth %s left after its namespace was unmounted", ep.HostVeth)
	}
	assertDetached(t, m, ep)
}

// A sandbox is only a container's first interface.
func TestAttachSandboxNotFirst(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	s, err := NewSandbox()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := m.Attach(ctx, "sbx"+randHex(30), testNetns(t), AttachRequest{Interface: "eth1", Sandbox: s}); err == nil {
		t.Error("attach of a sandbox as eth1 succeeded")
	}
}

// The pool makes a sandbox after the first Take, hands it to the next, and
// Close kills what it holds.
func TestSandboxPool(t *testing.T) {
	p := NewSandboxPool(1, 0)
	if s := p.Take(); s != nil {
		t.Fatal("a new pool had a sandbox ready")
	}
	var s *Sandbox
	for range 500 { // a bound against hangs, not a threshold
		p.mu.Lock()
		n, filling := len(p.ready), p.filling
		p.mu.Unlock()
		if n == 1 && !filling {
			s = p.Take()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s == nil {
		t.Fatal("the pool never made a sandbox")
	}
	s.Close()
	if !waitLinkGone(s.HostVeth()) {
		t.Errorf("veth %s left", s.HostVeth())
	}
	var next *Sandbox
	for range 500 {
		p.mu.Lock()
		if len(p.ready) == 1 && !p.filling {
			next = p.ready[0]
		}
		p.mu.Unlock()
		if next != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if next == nil {
		t.Fatal("the pool was not filled again")
	}
	p.Close()
	if !waitLinkGone(next.HostVeth()) {
		t.Errorf("veth %s left after the pool's Close", next.HostVeth())
	}
}

// A sandbox the kernel no longer matches (its veth deleted by hand) fails
// Attach with ErrSandbox, and leaves nothing: the engine then tries again
// without one.
func TestAttachBrokenSandbox(t *testing.T) {
	m := testManager(t)
	ctx := testCtx(t)
	s, err := NewSandbox()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if l, err := netlink.LinkByName(s.HostVeth()); err != nil || netlink.LinkDel(l) != nil {
		t.Fatalf("delete the sandbox's veth: %v", err)
	}
	path := filepath.Join(t.TempDir(), "netns")
	if err := s.Mount(path); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(path, unix.MNT_DETACH)
	ports, _ := ParsePorts([]string{"127.0.0.1::80"})
	id := "sbx" + randHex(30)
	_, err = m.Attach(ctx, id, path, AttachRequest{Ports: ports, Sandbox: s})
	if !errors.Is(err, ErrSandbox) {
		t.Fatalf("attach with a broken sandbox: %v, want ErrSandbox", err)
	}
	def, _ := m.Get(ctx, DefaultNetwork)
	assertDetached(t, m, &Endpoint{ContainerID: id, NetworkID: def.ID, HostVeth: s.HostVeth()})
	// Once more without the sandbox, into the same namespace.
	ep, err := m.Attach(ctx, id, path, AttachRequest{Ports: ports})
	if err != nil {
		t.Fatalf("attach again without the sandbox: %v", err)
	}
	if err := m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertDetached(t, m, ep)
}

// A start that took a sandbox has the next made after the pool's delay;
// Refill (a container's exit) brings it forward. A pool never taken from
// makes none on Refill.
func TestSandboxPoolRefill(t *testing.T) {
	p := NewSandboxPool(1, time.Hour)
	defer p.Close()
	p.Refill(0)
	waitPool := func(want int) bool {
		for range 500 { // a bound against hangs, not a threshold
			p.mu.Lock()
			n, filling := len(p.ready), p.filling
			p.mu.Unlock()
			if n == want && !filling {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	}
	time.Sleep(50 * time.Millisecond)
	p.mu.Lock()
	if len(p.ready) != 0 || p.timer != nil {
		t.Errorf("Refill of a pool never taken from made or scheduled a sandbox")
	}
	p.mu.Unlock()
	if p.Take() != nil || !waitPool(1) { // a miss fills at once
		t.Fatal("the pool was not filled after a miss")
	}
	s := p.Take()
	if s == nil {
		t.Fatal("no sandbox ready")
	}
	s.Close()
	p.mu.Lock()
	scheduled := p.timer != nil && len(p.ready) == 0
	p.mu.Unlock()
	if !scheduled {
		t.Fatal("a hit did not schedule the next sandbox for later")
	}
	p.Refill(0)
	if !waitPool(1) {
		t.Fatal("Refill did not bring the scheduled fill forward")
	}
}
