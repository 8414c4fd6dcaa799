package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// PortMapping is one published port. A HostPort of 0 asks for a free port
// chosen at Attach, and so does a HostPortEnd: a free port of the range
// HostPort-HostPortEnd (`-p 8000-8010:80`); an endpoint's mappings have
// their host port chosen. An invalid (zero) HostIP means every address of
// the host.
type PortMapping struct {
	HostIP        netip.Addr `json:"hostIP,omitzero"`
	HostPort      uint16     `json:"hostPort"`
	HostPortEnd   uint16     `json:"hostPortEnd,omitempty"`
	ContainerPort uint16     `json:"containerPort"`
	Proto         string     `json:"proto"` // "tcp" or "udp"
}

// String formats m as `docker port` does: "80/tcp -> 0.0.0.0:8080".
func (m PortMapping) String() string {
	ip := "0.0.0.0"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	if m.HostPortEnd != 0 {
		return fmt.Sprintf("%d/%s -> %s:%d-%d", m.ContainerPort, m.Proto, ip, m.HostPort, m.HostPortEnd)
	}
	return fmt.Sprintf("%d/%s -> %s:%d", m.ContainerPort, m.Proto, ip, m.HostPort)
}

// ParsePorts parses -p specs, [ip:][hostPort:]containerPort[/tcp|/udp],
// where either port may be a range a-b (a host range as long as the
// container's), into one mapping per port; a host range with one container
// port is one mapping to a free port of that range, as with Docker. The
// host IP must be IPv4.
func ParsePorts(specs []string) ([]PortMapping, error) {
	var out []PortMapping
	for _, s := range specs {
		ms, err := parsePort(s)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func parsePort(spec string) ([]PortMapping, error) {
	bad := func(format string, args ...any) error {
		return errdefs.InvalidArgument("invalid port spec %q: %s", spec, fmt.Sprintf(format, args...))
	}
	rest, proto, hasProto := strings.Cut(spec, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return nil, bad("protocol %q is not tcp or udp", proto)
	}
	var ipStr, hostStr, ctrStr string
	if strings.HasPrefix(rest, "[") {
		return nil, bad("IPv6 host addresses are not supported")
	}
	switch parts := strings.Split(rest, ":"); len(parts) {
	case 1:
		ctrStr = parts[0]
	case 2:
		hostStr, ctrStr = parts[0], parts[1]
	case 3:
		ipStr, hostStr, ctrStr = parts[0], parts[1], parts[2]
	default:
		return nil, bad("too many colons")
	}
	var hostIP netip.Addr
	if ipStr != "" {
		a, err := netip.ParseAddr(ipStr)
		if err != nil || !a.Is4() {
			return nil, bad("host IP %q is not an IPv4 address", ipStr)
		}
		if !a.IsUnspecified() {
			hostIP = a
		}
	}
	cLo, cHi, err := parseRange(ctrStr)
	if err != nil {
		return nil, bad("container port: %v", err)
	}
	hLo, hHi := uint16(0), uint16(0)
	if hostStr != "" {
		if hLo, hHi, err = parseRange(hostStr); err != nil {
			return nil, bad("host port: %v", err)
		}
		if cHi == cLo && hHi != hLo {
			return []PortMapping{{HostIP: hostIP, HostPort: hLo, HostPortEnd: hHi, ContainerPort: cLo, Proto: proto}}, nil
		}
		if hHi-hLo != cHi-cLo {
			return nil, bad("host and container port ranges differ in length")
		}
	}
	var out []PortMapping
	for i := 0; i <= int(cHi-cLo); i++ {
		m := PortMapping{HostIP: hostIP, ContainerPort: cLo + uint16(i), Proto: proto}
		if hLo != 0 {
			m.HostPort = hLo + uint16(i)
		}
		out = append(out, m)
	}
	return out, nil
}

func parseRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePortNum(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parsePortNum(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("range %s ends before it starts", s)
		}
	}
	return lo, hi, nil
}

func parsePortNum(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// PublishAll returns the mappings of -P: each exposed port ("80/tcp",
// "53/udp", "8080") on a free host port of every address.
func PublishAll(exposed []string) ([]PortMapping, error) {
	var out []PortMapping
	for _, e := range exposed {
		ms, err := parsePort(e)
		if err != nil {
			return nil, err
		}
		if ms[0].HostIP.IsValid() || ms[0].HostPort != 0 {
			return nil, errdefs.InvalidArgument("invalid exposed port %q", e)
		}
		for _, m := range ms {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// portsClash reports whether a and b would take the same host port.
func portsClash(a, b PortMapping) bool {
	return a.Proto == b.Proto && a.HostPort == b.HostPort &&
		(!a.HostIP.IsValid() || !b.HostIP.IsValid() || a.HostIP == b.HostIP)
}
