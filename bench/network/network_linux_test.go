package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/network/nft"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// manager returns a manager on private roots, with its own bridge on
// 10.234.X.0/24 and its own nftables table, all removed afterwards.
func manager(b *testing.B) *network.Manager {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	dir := b.TempDir()
	s := randHex(3)
	var x [1]byte
	rand.Read(x[:])
	m, err := network.New(network.Options{
		Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"),
		DefaultSubnet: fmt.Sprintf("10.234.%d.0/24", x[0]), DefaultBridge: "bb" + s, Table: "berth_bench_" + s,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nft.New("berth_bench_" + s).Destroy() })
	return m
}

func netnsPath(b *testing.B) string {
	name := "berth-bench-" + randHex(4)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v: %s", err, out)
	}
	b.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

func listenIn(b *testing.B, path, addr string) net.Listener {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, _ := netns.Get()
	defer orig.Close()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		b.Fatal(err)
	}
	ln, lerr := net.Listen("tcp4", addr)
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // leave the broken thread locked: it dies with us
		b.Fatal(err)
	}
	if lerr != nil {
		b.Fatal(lerr)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

func benchAttach(b *testing.B, ports []string) {
	m := manager(b)
	ctx := context.Background()
	ns := netnsPath(b)
	pm, err := network.ParsePorts(ports)
	if err != nil {
		b.Fatal(err)
	}
	// A first container keeps the bridge and the table up, as on a host
	// that already runs containers.
	keep := netnsPath(b)
	keepID := "keep" + randHex(30)
	if _, err := m.Attach(ctx, keepID, keep, network.AttachRequest{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Detach(ctx, keepID) })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("%064x", i)
		if _, err := m.Attach(ctx, id, ns, network.AttachRequest{Ports: pm}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.Detach(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	eps, _ := m.Endpoints(ctx, network.DefaultNetwork)
	for _, e := range eps {
		m.Detach(ctx, e.ContainerID)
	}
}

func BenchmarkAttach(b *testing.B)              { benchAttach(b, nil) }
func BenchmarkAttachPublishedPort(b *testing.B) { benchAttach(b, []string{"127.0.0.1::80"}) }

const chunk = 1 << 20

// sink reads everything a connection sends, then closes it.
func sink(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
}

func benchStream(b *testing.B, published bool) {
	m := manager(b)
	ctx := context.Background()
	ns := netnsPath(b)
	pm, _ := network.ParsePorts([]string{"127.0.0.1::5001"})
	id := "stream" + randHex(29)
	ep, err := m.Attach(ctx, id, ns, network.AttachRequest{Ports: pm})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Detach(ctx, id) })
	sink(listenIn(b, ns, ":5001"))
	addr := netip.AddrPortFrom(ep.IP, 5001).String()
	if published {
		addr = fmt.Sprintf("127.0.0.1:%d", ep.Ports[0].HostPort)
	}
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStreamDirect(b *testing.B)        { benchStream(b, false) }
func BenchmarkStreamPublishedPort(b *testing.B) { benchStream(b, true) }
