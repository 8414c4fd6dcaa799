package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/network/nft"
)

// dnsServeArg makes the test binary the resolver process.
const dnsServeArg = "__berth_dns_serve"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == dnsServeArg {
		if err := ServeDNSMain(context.Background(), os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testManager returns a manager over temporary roots, with its own
// nftables table, default bridge and subnets in 10.231.0.0/16 (which the
// host's routes were checked not to use), and cleans up everything
// it may have made, even when the test fails.
func testManager(t testing.TB) *Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	routes, err := hostRoutes()
	if err != nil {
		t.Fatal(err)
	}
	var base netip.Prefix
	for range 100 {
		b := make([]byte, 1)
		rand.Read(b)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 231, b[0], 0}), 24)
		clash := false
		for _, r := range routes {
			clash = clash || r.Bits() > 0 && r.Overlaps(p)
		}
		if !clash {
			base = p
			break
		}
	}
	if !base.IsValid() {
		t.Fatal("no free test subnet")
	}
	dir := t.TempDir()
	suffix := randHex(4)
	m, err := New(Options{
		Root:          filepath.Join(dir, "root"),
		RunRoot:       filepath.Join(dir, "run"),
		DefaultSubnet: base.String(),
		DefaultBridge: "bt" + suffix,
		Table:         "berth_test_" + suffix,
		DNSServer:     []string{os.Args[0], dnsServeArg},
		UserSubnets:   "10.232.0.0/16",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		nets, _ := m.list()
		for _, n := range nets {
			eps, _ := m.endpoints(n.ID)
			for _, e := range eps {
				m.Detach(ctx, e.ContainerID)
			}
			if !n.Predefined() {
				m.Remove(ctx, n.ID)
			} else {
				m.teardown(ctx, n)
			}
		}
		nft.New(m.opts.Table).Destroy()
	})
	return m
}

// testNetns creates a network namespace for a "container" and returns its
// path; it is deleted when the test ends.
func testNetns(t *testing.T) string {
	t.Helper()
	name := "berth-test-" + randHex(5)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// inNetns runs f on a thread switched into the namespace at path. Sockets
// made in f belong to that namespace for their whole life.
func inNetns(path string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread is unusable; keep it locked so that it dies with us.
		runtime.LockOSThread()
		return err
	}
	return ferr
}

func listenIn(t *testing.T, path, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := inNetns(path, func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dialIn(ctx context.Context, path, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(path, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// resolverIn resolves through the given DNS server from inside a netns.
func resolverIn(path string, server netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialIn(ctx, path, network, netip.AddrPortFrom(server, 53).String())
	}}
}

// echo serves ln: each connection gets back what it sends, prefixed.
func echo(ln net.Listener, prefix string) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				n, _ := c.Read(buf)
				c.Write(append([]byte(prefix), buf[:n]...))
			}()
		}
	}()
}

// roundTrip sends msg over c and returns the reply.
func roundTrip(c net.Conn, msg string) (string, error) {
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func runIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}
