package network

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
)

// TestFreePortOutsideEphemeral: a port chosen for a mapping without one is
// never in the kernel's ephemeral range, where the kernel could hand it to
// another socket (nothing holds a mapped port), and it is free.
func TestFreePortOutsideEphemeral(t *testing.T) {
	lo, hi := dynamicPorts()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skip("no /proc/sys/net/ipv4/ip_local_port_range")
	}
	var elo, ehi int
	fmt.Sscan(string(b), &elo, &ehi)
	if hi >= elo || lo < 1024 || lo > hi {
		t.Fatalf("dynamic ports %d-%d overlap the ephemeral range %d-%d", lo, hi, elo, ehi)
	}
	for _, proto := range []string{"tcp", "udp"} {
		for range 20 {
			port, err := freePort(PortMapping{Proto: proto, HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 80})
			if err != nil {
				t.Fatal(err)
			}
			if int(port) < lo || int(port) > hi {
				t.Fatalf("%s port %d outside %d-%d", proto, port, lo, hi)
			}
			if err := probePort(PortMapping{Proto: proto, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: port}); err != nil {
				t.Fatalf("%s port %d is not free: %v", proto, port, err)
			}
		}
	}
}
