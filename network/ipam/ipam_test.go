package ipam

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestParseSubnet(t *testing.T) {
	for _, bad := range []string{"", "10.0.0.1/24", "fd00::/64", "10.0.0.0/31", "10.0.0.0", "10.0.0.0/4", "300.0.0.0/8"} {
		if _, err := ParseSubnet(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseSubnet(%q) = %v, want invalid argument", bad, err)
		}
	}
	if p, err := ParseSubnet("10.89.3.0/24"); err != nil || p.String() != "10.89.3.0/24" {
		t.Errorf("ParseSubnet = %v, %v", p, err)
	}
}

func TestGateway(t *testing.T) {
	p := netip.MustParsePrefix("10.89.0.0/24")
	if g, err := Gateway(p, ""); err != nil || g.String() != "10.89.0.1" {
		t.Errorf("default gateway = %v, %v", g, err)
	}
	if g, err := Gateway(p, "10.89.0.254"); err != nil || g.String() != "10.89.0.254" {
		t.Errorf("gateway = %v, %v", g, err)
	}
	for _, bad := range []string{"10.89.0.0", "10.89.0.255", "10.89.1.1", "x"} {
		if _, err := Gateway(p, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Gateway(%q) = %v, want invalid argument", bad, err)
		}
	}
}

func TestNext(t *testing.T) {
	p := netip.MustParsePrefix("10.89.0.0/29") // .1 to .6 usable
	gw := netip.MustParseAddr("10.89.0.1")
	used := map[netip.Addr]bool{}
	var got []string
	hint := netip.Addr{}
	for range 5 {
		a, err := Next(p, gw, used, hint)
		if err != nil {
			t.Fatal(err)
		}
		used[a] = true
		hint = a
		got = append(got, a.String())
	}
	want := []string{"10.89.0.2", "10.89.0.3", "10.89.0.4", "10.89.0.5", "10.89.0.6"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocations = %v, want %v", got, want)
		}
	}
	if _, err := Next(p, gw, used, hint); !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("full subnet: %v", err)
	}
	// Releasing .3 and starting after the last one given wraps to .3.
	delete(used, netip.MustParseAddr("10.89.0.3"))
	if a, err := Next(p, gw, used, hint); err != nil || a.String() != "10.89.0.3" {
		t.Fatalf("after release: %v, %v", a, err)
	}
}

func TestOverlapsAndBroadcast(t *testing.T) {
	a := netip.MustParsePrefix("10.88.0.0/16")
	if !Overlaps(a, netip.MustParsePrefix("10.88.5.0/24")) || Overlaps(a, netip.MustParsePrefix("10.89.0.0/24")) {
		t.Error("Overlaps wrong")
	}
	if b := Broadcast(a); b.String() != "10.88.255.255" {
		t.Errorf("Broadcast = %v", b)
	}
	if Usable(a, netip.MustParseAddr("10.88.0.0")) || !Usable(a, netip.MustParseAddr("10.88.0.9")) {
		t.Error("Usable wrong")
	}
}
