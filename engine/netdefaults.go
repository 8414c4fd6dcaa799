package engine

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/internal/fsutil"
)

// DefaultRoot is the data root berth uses unless told otherwise.
const DefaultRoot = "/var/lib/berth"

// netDefaults are the host-wide names a data root's default network takes.
type netDefaults struct {
	Bridge      string `json:"bridge"`
	Subnet      string `json:"subnet"`
	UserSubnets string `json:"userSubnets"`
}

// networkDefaults returns the bridge and subnets of this data root's
// networks. The default root takes Docker-like ones (berth0,
// 10.88.0.0/16, user networks from 10.89.0.0/16); any other root (a test's,
// a second installation's) gets its own, chosen once from a hash of its
// path among the subnets no route of the host uses, and remembered, so
// that several data roots on one host never share a bridge or a subnet.
// $BERTH_BRIDGE and $BERTH_BRIDGE_SUBNET override.
func (e *Engine) networkDefaults() netDefaults {
	d := netDefaults{Bridge: os.Getenv("BERTH_BRIDGE"), Subnet: os.Getenv("BERTH_BRIDGE_SUBNET")}
	if d.Bridge != "" || d.Subnet != "" || filepath.Clean(e.root) == DefaultRoot {
		return d
	}
	p := filepath.Join(e.root, "network", "defaults.json")
	if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &d) == nil && d.Bridge != "" {
		return d
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return netDefaults{}
	}
	l, err := fsutil.LockFile(filepath.Join(filepath.Dir(p), ".defaults.lock"))
	if err != nil {
		return netDefaults{}
	}
	defer l.Unlock()
	if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &d) == nil && d.Bridge != "" {
		return d
	}
	h := sha256.Sum256([]byte(filepath.Clean(e.root)))
	d.Bridge = fmt.Sprintf("bn%x", h[:5])
	used := hostRoutes()
	free := func(p netip.Prefix) bool {
		for _, u := range used {
			if u.Overlaps(p) {
				return false
			}
		}
		return true
	}
	// The default network: a /16 in 10.128.0.0/10 (room for thousands of
	// containers, as Docker's); user networks: a /20 pool in
	// 10.192.0.0/10. Start where the hash points, walk on.
	for i := 0; i < 64; i++ {
		n := int(h[5]) + i
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + n%64), 0, 0}), 16)
		if free(p) {
			d.Subnet = p.String()
			break
		}
	}
	for i := 0; i < 1024; i++ {
		n := (int(h[7])<<8 | int(h[8])) + i
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(192 + (n>>4)%64), byte(n%16) << 4, 0}), 20)
		if free(p) {
			d.UserSubnets = p.String()
			break
		}
	}
	if b, err := json.Marshal(d); err == nil {
		fsutil.WriteFileAtomic(p, b, 0o600)
	}
	return d
}

// hostRoutes lists the IPv4 destinations the host routes.
func hostRoutes() []netip.Prefix {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, err := netip.ParsePrefix(r.Dst.String()); err == nil && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	return out
}
