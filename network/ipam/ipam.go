// Package ipam owns address arithmetic for berth's networks: validating a
// subnet and its gateway, telling whether two subnets overlap, and picking
// the next free address of a subnet given the ones in use. It keeps no state:
// the network package records who holds which address, under its lock, and
// hands the set in use to Next.
package ipam

import (
	"net/netip"

	"github.com/berth-dev/berth/errdefs"
)

// ParseSubnet parses an IPv4 CIDR such as "10.89.0.0/24". Host bits must be
// zero and the prefix at most /30, so that a gateway and one container fit.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errdefs.InvalidArgument("invalid subnet %q: %v", s, err)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, errdefs.InvalidArgument("invalid subnet %q: only IPv4 subnets are supported", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, errdefs.InvalidArgument("invalid subnet %q: host bits set (did you mean %s?)", s, p.Masked())
	}
	if p.Bits() > 30 || p.Bits() < 8 {
		return netip.Prefix{}, errdefs.InvalidArgument("invalid subnet %q: prefix length must be between /8 and /30", s)
	}
	return p, nil
}

// Overlaps reports whether a and b share an address.
func Overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// Broadcast returns the last address of p.
func Broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := be(b) | host
	return fromBE(v)
}

// Usable reports whether a can be given to a host on p: inside p, and
// neither its network nor its broadcast address.
func Usable(p netip.Prefix, a netip.Addr) bool {
	return a.Is4() && p.Contains(a) && a != p.Masked().Addr() && a != Broadcast(p)
}

// Gateway returns the gateway for p: gw if given (it must be usable on p),
// else p's first usable address.
func Gateway(p netip.Prefix, gw string) (netip.Addr, error) {
	if gw == "" {
		return p.Masked().Addr().Next(), nil
	}
	a, err := netip.ParseAddr(gw)
	if err != nil {
		return netip.Addr{}, errdefs.InvalidArgument("invalid gateway %q: %v", gw, err)
	}
	if !Usable(p, a) {
		return netip.Addr{}, errdefs.InvalidArgument("invalid gateway %s: not a host address of subnet %s", a, p)
	}
	return a, nil
}

// Next returns the first usable address of p after hint (or from the start
// of p when hint is not in p) that is not the gateway and not in used,
// wrapping around once. Starting after the last address given out spreads
// allocations around the subnet, so that an address just released is not
// handed to the next container at once. It fails with errdefs.ErrInUse
// when p is full.
func Next(p netip.Prefix, gateway netip.Addr, used map[netip.Addr]bool, hint netip.Addr) (netip.Addr, error) {
	first := p.Masked().Addr().Next()
	last := Broadcast(p).Prev()
	start := first
	if hint.IsValid() && p.Contains(hint) && hint.Less(last) {
		start = hint.Next()
	}
	if start.Less(first) {
		start = first
	}
	a := start
	for {
		if a != gateway && !used[a] {
			return a, nil
		}
		if a == last {
			a = first
		} else {
			a = a.Next()
		}
		if a == start {
			return netip.Addr{}, errdefs.InUse("every address of subnet %s is in use", p)
		}
	}
}

func be(b [4]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromBE(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
