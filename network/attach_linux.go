package network

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network/ipam"
	"github.com/berth-dev/berth/network/nft"
)

// Attach connects the container whose network namespace is at netnsPath
// (/proc/PID/ns/net or a bind-mounted namespace file) to a network: it
// allocates an address, creates the network's bridge if it is the first
// container, a veth pair with one end in the namespace (up, addressed,
// with the MAC, a default route through the gateway, and lo up), publishes
// the ports, and starts the network's resolver if it has one. A host port
// already taken, by berth or by a socket of the host, fails before
// anything changes. On error, nothing of the attachment is left.
func (m *Manager) Attach(ctx context.Context, containerID, netnsPath string, req AttachRequest) (*Endpoint, error) {
	if containerID == "" {
		return nil, errdefs.InvalidArgument("attach: empty container ID")
	}
	l, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	nets, err := m.ensurePredefined()
	if err != nil {
		return nil, err
	}
	m.mark("net: lock, networks")
	ref := req.Network
	if ref == "" {
		ref = DefaultNetwork
	}
	n, err := attachable(nets, ref, req.Aliases, "attach to")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(m.endpointFile(n.ID, containerID)); err == nil {
		return nil, errdefs.AlreadyExists("container %s is already attached to network %s", shortID(containerID), n.Name)
	}
	// The bridge is looked up while the records are read and written.
	brc := make(chan netlink.Link, 1)
	go func() {
		br, _ := hostLinks().LinkByName(n.Bridge)
		brc <- br
	}()
	ep, err := m.plan(nets, n, containerID, netnsPath, req)
	if err != nil {
		<-brc
		return nil, err
	}
	m.mark("net: plan")
	// The record is the allocation: written before the kernel changes, so
	// that the address and ports are never given twice, even after a crash.
	if err := m.writeEndpoint(ep); err != nil {
		<-brc
		return nil, err
	}
	m.mark("net: record")
	if err := m.setup(ctx, n, ep, req, <-brc); err != nil {
		if derr := m.detachLocked(ctx, n, ep, true); derr != nil {
			err = fmt.Errorf("%w (and undoing it: %v)", err, derr)
		}
		return nil, err
	}
	return ep, nil
}

// plan chooses the endpoint's address, MAC, interface and host ports.
func (m *Manager) plan(nets []*Network, n *Network, containerID, netnsPath string, req AttachRequest) (*Endpoint, error) {
	// Every record is read once: this network's addresses, the
	// container's interfaces on other networks and every published port
	// come from the same reading.
	all, err := m.allEndpoints(nets)
	if err != nil {
		return nil, err
	}
	used := map[netip.Addr]bool{}
	var mine []*Endpoint
	for _, e := range all {
		if e.NetworkID == n.ID {
			used[e.IP] = true
		}
		if e.ContainerID == containerID {
			mine = append(mine, e)
		}
	}
	var ip netip.Addr
	if req.IP != "" {
		if ip, err = netip.ParseAddr(req.IP); err != nil || !ip.Is4() {
			return nil, errdefs.InvalidArgument("invalid IPv4 address %q (--ip)", req.IP)
		}
		if !ipam.Usable(n.Subnet, ip) || ip == n.Gateway {
			return nil, errdefs.InvalidArgument("address %s is not a free host address of network %s (%s)", ip, n.Name, n.Subnet)
		}
		if used[ip] {
			return nil, errdefs.Conflict("address %s is already in use on network %s", ip, n.Name)
		}
	} else if ip, err = ipam.Next(n.Subnet, n.Gateway, used, m.lastIP(n.ID)); err != nil {
		return nil, err
	}
	mac := req.MAC
	if mac == "" {
		b := ip.As4()
		mac = net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}.String()
	} else if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 || hw[0]&1 != 0 {
		return nil, errdefs.InvalidArgument("invalid MAC address %q (--mac-address)", req.MAC)
	}
	ifname := req.Interface
	if ifname == "" {
		for i := 0; ; i++ {
			ifname = "eth" + strconv.Itoa(i)
			if !slices.ContainsFunc(mine, func(e *Endpoint) bool { return e.Interface == ifname }) {
				break
			}
		}
	}
	ports, err := reservePorts(all, req.Ports)
	if err != nil {
		return nil, err
	}
	veth := vethName(containerID, n.ID)
	if req.Sandbox != nil {
		if ifname != "eth0" {
			return nil, errdefs.InvalidArgument("a sandbox is a container's first interface, eth0, not %s", ifname)
		}
		veth = req.Sandbox.hostVeth
	}
	ep := &Endpoint{
		ContainerID: containerID, NetworkID: n.ID, NetworkName: n.Name, EndpointID: newID(),
		Name: req.Name, Aliases: slices.Clone(req.Aliases), Interface: ifname,
		HostVeth: veth, Netns: netnsPath,
		IP: ip, PrefixLen: n.Subnet.Bits(), Gateway: n.Gateway, MAC: mac, Ports: ports, DNS: slices.Clone(req.DNS),
	}
	if n.DNS() && len(m.opts.DNSServer) > 0 {
		ep.DNSServer = n.Gateway
	}
	return ep, nil
}

// CheckPorts reports, reserving nothing, whether ports could be published
// now: a host port another container of berth publishes, or a socket of
// the host holds, is an error. The engine calls it before it creates a
// container, so that a taken port leaves nothing behind; Attach checks
// again under the lock.
func (m *Manager) CheckPorts(ctx context.Context, ports []PortMapping) error {
	// A port without a host port gets a free one when the container
	// starts: nothing to check now.
	ports = slices.DeleteFunc(slices.Clone(ports), func(p PortMapping) bool { return p.HostPort == 0 })
	if len(ports) == 0 {
		return nil
	}
	nets, err := m.list()
	if err != nil {
		return err
	}
	all, err := m.allEndpoints(nets)
	if err != nil {
		return err
	}
	_, err = reservePorts(all, ports)
	return err
}

// allEndpoints reads the endpoint records of every network.
func (m *Manager) allEndpoints(nets []*Network) ([]*Endpoint, error) {
	var all []*Endpoint
	for _, n := range nets {
		eps, err := m.endpoints(n.ID)
		if err != nil {
			return nil, err
		}
		all = append(all, eps...)
	}
	return all, nil
}

// reservePorts checks the requested ports against every port the
// endpoints publish and against the host's sockets, and chooses free ports
// for those without one.
func reservePorts(eps []*Endpoint, req []PortMapping) ([]PortMapping, error) {
	if len(req) == 0 {
		return nil, nil
	}
	var taken []PortMapping
	for _, e := range eps {
		taken = append(taken, e.Ports...)
	}
	out := make([]PortMapping, 0, len(req))
	for _, p := range req {
		if p.Proto != "tcp" && p.Proto != "udp" {
			return nil, errdefs.InvalidArgument("invalid protocol %q for port %d", p.Proto, p.ContainerPort)
		}
		if p.HostPortEnd != 0 {
			q, err := portInRange(p, append(taken, out...))
			if err != nil {
				return nil, err
			}
			out = append(out, q)
			continue
		}
		if p.HostPort != 0 {
			for _, t := range append(taken, out...) {
				if portsClash(p, t) {
					return nil, errdefs.Conflict("Bind for %s:%d failed: port is already allocated", hostIPString(p.HostIP), p.HostPort)
				}
			}
			if err := probePort(p); err != nil {
				return nil, err
			}
			out = append(out, p)
			continue
		}
		found := false
		for range 64 {
			port, err := freePort(p)
			if err != nil {
				return nil, err
			}
			q := p
			q.HostPort = port
			if !slices.ContainsFunc(append(taken, out...), func(t PortMapping) bool { return portsClash(q, t) }) {
				out = append(out, q)
				found = true
				break
			}
		}
		if !found {
			return nil, errdefs.InUse("no free host port for %d/%s", p.ContainerPort, p.Proto)
		}
	}
	return out, nil
}

// portInRange chooses the first port of p's host range that no mapping of
// taken holds and no socket of the host is bound to.
func portInRange(p PortMapping, taken []PortMapping) (PortMapping, error) {
	for port := int(p.HostPort); port <= int(p.HostPortEnd); port++ {
		q := p
		q.HostPort, q.HostPortEnd = uint16(port), 0
		if slices.ContainsFunc(taken, func(t PortMapping) bool { return portsClash(q, t) }) {
			continue
		}
		err := probePort(q)
		if err == nil {
			return q, nil
		}
		if !errdefs.IsConflict(err) {
			return PortMapping{}, err
		}
	}
	return PortMapping{}, errdefs.Conflict("Bind for %s:%d-%d failed: every port of the range is already allocated",
		hostIPString(p.HostIP), p.HostPort, p.HostPortEnd)
}

func hostIPString(a netip.Addr) string {
	if !a.IsValid() {
		return "0.0.0.0"
	}
	return a.String()
}

// probePort binds the host port for a moment: a socket of the host already
// listening there makes the publication an error (its traffic would be
// taken from it).
func probePort(p PortMapping) error {
	addr := net.JoinHostPort(hostIPString(p.HostIP), strconv.Itoa(int(p.HostPort)))
	var err error
	if p.Proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			return c.Close()
		}
	} else {
		var ln net.Listener
		if ln, err = net.Listen("tcp4", addr); err == nil {
			return ln.Close()
		}
	}
	if errors.Is(err, unix.EADDRINUSE) {
		return errdefs.Conflict("Bind for %s failed: port is already allocated", addr)
	}
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return errdefs.InvalidArgument("cannot publish on %s: %s is not an address of this host", addr, hostIPString(p.HostIP))
	}
	return fmt.Errorf("publish %s: %w", addr, err)
}

// freePort chooses a free host port of p's protocol and address among
// dynamicPorts, from a random one on.
func freePort(p PortMapping) (uint16, error) {
	lo, hi := dynamicPorts()
	start := lo + mrand.IntN(hi-lo+1)
	for i := 0; i <= hi-lo; i++ {
		port := lo + (start-lo+i)%(hi-lo+1)
		q := p
		q.HostPort = uint16(port)
		err := probePort(q)
		if err == nil {
			return uint16(port), nil
		}
		if !errdefs.IsConflict(err) {
			return 0, err
		}
	}
	return 0, errdefs.InUse("no free host port for %d/%s", p.ContainerPort, p.Proto)
}

// dynamicPorts is the range of host ports chosen for a mapping without
// one: the 16384 ports below the kernel's ephemeral range. A port the
// kernel may hand to a socket bound to port 0, or to an outgoing
// connection, would be taken from under the mapping: nothing holds a
// mapped port, and the mapping's rule would capture the local traffic of
// whoever got it (a test server, a client's connection).
func dynamicPorts() (lo, hi int) {
	ephemeral := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 1024 {
				ephemeral = n
			}
		}
	}
	hi = ephemeral - 1
	lo = max(1024, ephemeral-16384)
	return lo, hi
}

func (m *Manager) firewall() *nft.Firewall { return nft.New(m.opts.Table) }

// hostLinks is the process's route netlink handle in the host's network
// namespace, opened on first use and kept: the package's functions open,
// bind and close a socket for every request, ~5 of them per attach and 2
// per release. The handle serialises its requests. No goroutine runs in
// another namespace unless locked to its thread (newNetns, NewHandleAt),
// so the socket is the host's whichever thread opens it.
var hostLinks = sync.OnceValue(func() *netlink.Handle {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return &netlink.Handle{} // a socket per request, as the package's functions
	}
	return h
})

func netOwner(n *Network) string { return "net:" + n.ID[:12] }

// setup makes the kernel match a planned endpoint: with the request's
// sandbox, it configures that while it publishes the ports (the firewall
// and the links are separate sockets and locks of the kernel) and then
// waits for the request's NetnsReady; else it makes a veth into the
// namespace, after NetnsReady, and then publishes the ports. found is
// the network's bridge if a lookup found it.
func (m *Manager) setup(ctx context.Context, n *Network, ep *Endpoint, req AttachRequest, found netlink.Link) error {
	br, err := m.ensureBridge(n, found)
	if err != nil {
		return err
	}
	m.mark("net: bridge")
	if req.Sandbox == nil {
		if err := m.makeVeth(n, ep, br, req.NetnsReady); err != nil {
			return err
		}
		return m.publish(ctx, n, ep)
	}
	pubc := make(chan error, 1)
	go func() { pubc <- m.publish(ctx, n, ep) }()
	err = req.Sandbox.configure(n, ep, br)
	if err != nil {
		err = fmt.Errorf("attach to network %s: %w: %w", n.Name, ErrSandbox, err)
	}
	m.mark("net: sandbox")
	err = errors.Join(err, <-pubc)
	if err == nil && req.NetnsReady != nil {
		err = req.NetnsReady()
	}
	m.mark("net: ports, netns ready")
	return err
}

// makeVeth makes the endpoint's veth pair, its end inside configured, in
// the namespace at ep.Netns, once ready (if not nil) says it exists.
func (m *Manager) makeVeth(n *Network, ep *Endpoint, br netlink.Link, ready func() error) error {
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
		m.mark("net: netns ready")
	}
	ns, err := netns.GetFromPath(ep.Netns)
	if err != nil {
		return errdefs.InvalidArgument("attach to network %s: open network namespace %s: %v", n.Name, ep.Netns, err)
	}
	defer ns.Close()
	mac, _ := net.ParseMAC(ep.MAC)
	hostEnd := hostEndAttrs(ep.HostVeth)
	hostEnd.MasterIndex, hostEnd.MTU, hostEnd.Flags = br.Attrs().Index, br.Attrs().MTU, net.FlagUp
	veth := &netlink.Veth{
		LinkAttrs:        hostEnd,
		PeerName:         ep.Interface,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(ns),
	}
	h := hostLinks()
	err = h.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) {
		// The veth of this container's last run, left to the kernel with
		// its namespace (Release) and not deleted yet, or kept by a
		// container that shared that namespace: it goes now.
		if old, lerr := h.LinkByName(ep.HostVeth); lerr == nil {
			if derr := h.LinkDel(old); derr != nil && !errors.Is(derr, unix.ENODEV) {
				return fmt.Errorf("attach to network %s: delete stale veth %s: %w", n.Name, ep.HostVeth, derr)
			}
		}
		err = h.LinkAdd(veth)
	}
	if err != nil {
		return fmt.Errorf("attach to network %s: create veth %s: %w", n.Name, ep.HostVeth, err)
	}
	m.mark("net: veth")
	if err := configureInside(ns, n, ep); err != nil {
		return fmt.Errorf("attach to network %s: %w", n.Name, err)
	}
	m.mark("net: inside")
	return nil
}

// publish adds the endpoint's ports to the firewall and starts its
// network's resolver, if it has one.
func (m *Manager) publish(ctx context.Context, n *Network, ep *Endpoint) error {
	if len(ep.Ports) > 0 {
		var ports []nft.Port
		for _, p := range ep.Ports {
			ports = append(ports, nft.Port{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, ContainerIP: ep.IP, ContainerPort: p.ContainerPort})
		}
		if err := m.firewall().AddPorts(ep.owner(), ports); err != nil {
			return fmt.Errorf("attach to network %s: %w", n.Name, err)
		}
		m.mark("net: ports")
	}
	if ep.DNSServer.IsValid() {
		if err := m.ensureDNS(ctx, n); err != nil {
			return fmt.Errorf("attach to network %s: %w", n.Name, err)
		}
	}
	return nil
}

// configureInside sets the container's side up: lo, the interface, its
// address and, for the first network with outside access, the default route.
func configureInside(ns netns.NsHandle, n *Network, ep *Endpoint) error {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE) // not xfrm and netfilter: a socket each, made in the namespace
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ep.Netns, err)
	}
	defer h.Close()
	// lo is the first interface of every network namespace.
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	link, err := h.LinkByName(ep.Interface)
	if err != nil {
		return fmt.Errorf("find %s: %w", ep.Interface, err)
	}
	if err := noLinkLocal(ep.HostVeth, h, link); err != nil {
		return err
	}
	return addressInside(h, n, ep, link)
}

// addressInside gives the interface inside, through h (a handle in the
// namespace), its address, sets it up and, for the first network with
// outside access, adds the default route.
func addressInside(h *netlink.Handle, n *Network, ep *Endpoint, link netlink.Link) error {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ep.IP.AsSlice(), Mask: net.CIDRMask(ep.PrefixLen, 32)}}
	if err := h.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add address %s: %w", ep.Prefix(), err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", ep.Interface, err)
	}
	if n.Internal {
		return nil
	}
	// RouteAdd is exclusive: a default route that a first network gave
	// makes it fail with EEXIST, and that route stays (no dump of the
	// routes first).
	err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: ep.Gateway.AsSlice()})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add default route via %s: %w", ep.Gateway, err)
	}
	return nil
}

// ensureBridge returns the network's bridge, creating it (addressed, up,
// with its firewall rules) for the first container. The bridge then stays
// (the default network's for good, as docker0 does; a user network's until
// `network rm`): deleting a bridge waits for RCU grace periods, ~35 ms, and
// making one again for the next container ~10 ms more.
func (m *Manager) ensureBridge(n *Network, found netlink.Link) (netlink.Link, error) {
	br := found
	if br == nil || br.Attrs().Name != n.Bridge {
		br, _ = hostLinks().LinkByName(n.Bridge)
	}
	if br != nil {
		if a := m.bridgeAlias(n); br.Attrs().Alias != a {
			return br, m.adoptBridge(n, br, a)
		}
		return br, nil
	}
	fw := m.firewall()
	if err := fw.Ensure(); err != nil {
		return nil, err
	}
	if !n.Internal {
		if err := enableForwarding(); err != nil {
			return nil, err
		}
	}
	// A bridge without an address of its own takes the lowest of its
	// ports' and changes it when that port goes: every container would
	// then send to the gateway's old MAC until its ARP entry expired
	// (found when a container left a network: its neighbours lost the
	// gateway, and with it the resolver, for half a minute). An address
	// given at creation stays.
	m.sweepOrphans()
	// The alias names the network's file, so that a bridge whose data
	// root is gone can be found and deleted (sweepOrphans).
	br = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, HardwareAddr: randomMAC()}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", n.Bridge, err)
	}
	fail := func(err error) (netlink.Link, error) {
		netlink.LinkDel(br)
		return nil, err
	}
	// (The kernel ignores an alias given to RTM_NEWLINK with a new link.)
	if a := m.bridgeAlias(n); a != "" {
		if err := netlink.LinkSetAlias(br, a); err != nil {
			return fail(fmt.Errorf("bridge %s: set alias: %w", n.Bridge, err))
		}
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	if err := netlink.AddrAdd(br, gw); err != nil {
		return fail(fmt.Errorf("address bridge %s: %w", n.Bridge, err))
	}
	// Published ports are reachable from 127.0.0.1: the output chain's
	// DNAT sends such packets to the bridge, which must let them route.
	if err := writeSysctl("net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
		return fail(err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fail(fmt.Errorf("set bridge %s up: %w", n.Bridge, err))
	}
	if err := fw.Delete(netOwner(n)); err != nil {
		return fail(err)
	}
	if err := fw.AddNetwork(nft.Network{Owner: netOwner(n), Bridge: n.Bridge, Subnet: n.Subnet, Internal: n.Internal}); err != nil {
		return fail(err)
	}
	return br, nil
}

// adoptBridge makes a bridge of the network's name that another network
// made (a data root removed and made again with the same bridge, as the
// bench's stores do; or an older berth, without alias) this network's: its
// alias, and this network's rules instead of the other's.
func (m *Manager) adoptBridge(n *Network, br netlink.Link, alias string) error {
	fw := m.firewall()
	if err := fw.Ensure(); err != nil {
		return err
	}
	if file, ok := strings.CutPrefix(br.Attrs().Alias, aliasPrefix); ok {
		if id := strings.TrimSuffix(filepath.Base(file), ".json"); len(id) >= 12 {
			if err := fw.Delete(netOwner(&Network{ID: id})); err != nil {
				return err
			}
		}
	}
	if err := fw.Delete(netOwner(n)); err != nil {
		return err
	}
	if err := fw.AddNetwork(nft.Network{Owner: netOwner(n), Bridge: n.Bridge, Subnet: n.Subnet, Internal: n.Internal}); err != nil {
		return err
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	if err := netlink.AddrReplace(br, gw); err != nil {
		return fmt.Errorf("address bridge %s: %w", n.Bridge, err)
	}
	if err := netlink.LinkSetAlias(br, alias); err != nil {
		return fmt.Errorf("bridge %s: set alias: %w", n.Bridge, err)
	}
	return nil
}

// aliasPrefix starts the alias of every bridge berth makes.
const aliasPrefix = "berth network "

// bridgeAlias is the alias of the network's bridge: aliasPrefix and the
// network's file ("" if too long for an alias, 255 bytes).
func (m *Manager) bridgeAlias(n *Network) string {
	a := aliasPrefix + m.netFile(n.ID)
	if len(a) > 255 {
		return ""
	}
	return a
}

// sweepOrphans deletes the bridges, and their rules, of networks whose file
// is gone: bridges outlive their containers, and a data root removed
// without `network rm` (a test's, an old installation's) would otherwise
// leave its bridges for good. Only a bridge without ports goes: a network
// file missing in this process's mount namespace but present in another's
// costs that data root, at worst, one bridge made again. Best effort: it
// runs before a bridge is made, which is rare.
func (m *Manager) sweepOrphans() {
	links, err := netlink.LinkList()
	if err != nil {
		return
	}
	ports := map[int]bool{}
	for _, l := range links {
		ports[l.Attrs().MasterIndex] = true
	}
	for _, l := range links {
		file, ok := strings.CutPrefix(l.Attrs().Alias, aliasPrefix)
		if !ok || l.Type() != "bridge" || ports[l.Attrs().Index] || !filepath.IsAbs(file) {
			continue
		}
		if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		id := strings.TrimSuffix(filepath.Base(file), ".json")
		if len(id) < 12 {
			continue
		}
		if err := netlink.LinkDel(l); err == nil {
			m.firewall().Delete(netOwner(&Network{ID: id}))
		}
	}
}

// randomMAC returns a random unicast, locally administered MAC address.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// enableForwarding turns IPv4 forwarding on, needed for a container to
// reach past the host. It is never turned off: other software may rely on
// it once it is on.
func enableForwarding() error {
	const p = "net/ipv4/ip_forward"
	b, err := os.ReadFile("/proc/sys/" + p)
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	return writeSysctl(p, "1")
}

func writeSysctl(name, value string) error {
	if err := os.WriteFile("/proc/sys/"+name, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(name, "/", "."), value, err)
	}
	return nil
}

// Detach removes the container from every network it is attached to: its
// veth (gone already if its namespace is), its published ports and its
// address. The network's bridge and rules stay; its resolver stops with its
// last container. Detaching a container that is not attached does nothing.
func (m *Manager) Detach(ctx context.Context, containerID string) error {
	return m.detach(ctx, containerID, "", true)
}

// Release is Detach for a container whose network namespace goes away
// next: it has exited, and the caller unmounts its namespace file. Its
// address, ports and rules are released now, its host veth's bridge port
// is only disabled (disablePort), and the kernel deletes the veth pair
// with the namespace (cleanup_net, asynchronously). Deleting a veth here
// would wait for an RCU grace period, 15-30 ms, before the container could
// be reported gone; disabling its port does not (~0.1 ms), and lets
// nothing through should the namespace outlive the call (a container that
// joined it with --network container:). Attach deletes a veth of the same
// name left from a previous run.
func (m *Manager) Release(ctx context.Context, containerID string) error {
	return m.detach(ctx, containerID, "", false)
}

// Disconnect removes the container from one network.
func (m *Manager) Disconnect(ctx context.Context, containerID, network string) error {
	n, err := m.Get(ctx, network)
	if err != nil {
		return err
	}
	if _, err := os.Stat(m.endpointFile(n.ID, containerID)); errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("container %s is not connected to network %s", shortID(containerID), n.Name)
	}
	return m.detach(ctx, containerID, n.ID, true)
}

func (m *Manager) detach(ctx context.Context, containerID, onlyNet string, delVeth bool) error {
	l, err := m.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	nets, err := m.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		if onlyNet != "" && n.ID != onlyNet {
			continue
		}
		b, err := os.ReadFile(m.endpointFile(n.ID, containerID))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var ep Endpoint
		if err != nil || json.Unmarshal(b, &ep) != nil {
			// Clean what the names alone tell.
			ep = Endpoint{ContainerID: containerID, NetworkID: n.ID, HostVeth: vethName(containerID, n.ID), partial: true}
		}
		errs = append(errs, m.detachLocked(ctx, n, &ep, delVeth))
	}
	return errors.Join(errs...)
}

// detachLocked undoes an endpoint, whatever part of it exists: with
// delVeth, its veth is deleted, else only taken off the bridge (Release).
func (m *Manager) detachLocked(ctx context.Context, n *Network, ep *Endpoint, delVeth bool) error {
	// The veth goes (or leaves the bridge) while the rules and the record
	// go: the links and the firewall are separate sockets and locks of
	// the kernel.
	vethc := make(chan error, 1)
	go func() {
		h := hostLinks()
		link, err := h.LinkByName(ep.HostVeth)
		if err != nil {
			vethc <- nil
			return
		}
		if delVeth {
			err = h.LinkDel(link)
		} else {
			err = disablePort(link)
		}
		if err != nil && !errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("detach from %s: veth %s: %w", n.Name, ep.HostVeth, err)
		} else {
			err = nil
		}
		vethc <- err
	}()
	// Only the publish chain holds a container's rules, and only if it
	// published ports; a record that could not be read says nothing.
	if len(ep.Ports) > 0 || ep.partial {
		if err := m.firewall().DeletePorts(ep.owner()); err != nil {
			<-vethc
			return fmt.Errorf("detach from %s: %w", n.Name, err)
		}
		m.mark("net: release ports")
	}
	if err := <-vethc; err != nil {
		return err
	}
	m.mark("net: release veth")
	dir := m.endpointDir(n.ID)
	before := m.opts.Endpoints.current(dir)
	if err := os.Remove(m.endpointFile(n.ID, ep.ContainerID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.opts.Endpoints.forget(dir)
		return fmt.Errorf("detach from %s: %w", n.Name, err)
	}
	bumpGeneration(dir)
	m.opts.Endpoints.changed(dir, before, ep.ContainerID, nil)
	m.mark("net: release record")
	if !n.DNS() {
		return nil
	}
	eps, err := m.endpoints(n.ID)
	if err != nil {
		return err
	}
	if len(eps) == 0 {
		// The resolver serves containers: it stops with the last one (the
		// next Attach starts it again). The bridge and its rules stay.
		return m.stopDNS(n)
	}
	return nil
}

// disablePort sets a bridge port's state to disabled: the bridge forwards
// nothing to or from it. Release does it to the veth of an exited
// container, which the kernel deletes with its namespace: unlike taking it
// off the bridge (which waits for an RCU grace period while it holds the
// RTNL lock, ~0.2 ms, far more under load), it waits for nothing, and
// nothing reaches the bridge through it should the namespace outlive the
// container. (The vishvananda package has no call for it.)
func disablePort(link netlink.Link) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_BRIDGE)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, nil)
	info.AddRtAttr(nl.IFLA_BRPORT_STATE, []byte{brStateDisabled})
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return nil // not a bridge port (any more)
		}
		return fmt.Errorf("disable bridge port: %w", err)
	}
	return nil
}

// brStateDisabled is BR_STATE_DISABLED of the kernel's if_bridge.h.
const brStateDisabled = 0

// teardown removes what a network has in the kernel: its resolver, rules
// and bridge (`network rm`). Idempotent.
func (m *Manager) teardown(ctx context.Context, n *Network) error {
	if n.Driver != DriverBridge {
		return nil
	}
	if err := m.stopDNS(n); err != nil {
		return err
	}
	if err := m.firewall().Delete(netOwner(n)); err != nil {
		return err
	}
	if br, err := netlink.LinkByName(n.Bridge); err == nil {
		if err := netlink.LinkDel(br); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete bridge %s: %w", n.Bridge, err)
		}
	}
	return nil
}

// Reclaim detaches every container that alive says is gone (dead, or
// removed while nothing watched): the engine calls it with what it knows
// of its containers, and their addresses and ports return to the pool.
func (m *Manager) Reclaim(ctx context.Context, alive func(containerID string) bool) error {
	nets, err := m.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		eps, err := m.endpoints(n.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range eps {
			if !alive(e.ContainerID) {
				errs = append(errs, m.detach(ctx, e.ContainerID, n.ID, true))
			}
		}
	}
	return errors.Join(errs...)
}

// hostRoutes returns the destinations of the host's IPv4 routes.
func hostRoutes() ([]netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(a, ones))
	}
	return out, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
