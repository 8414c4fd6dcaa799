// Package network owns berth's container networking: the networks a
// container can join (the default "bridge" network and user-defined bridge
// networks), their bridges and veth pairs, address allocation, outbound NAT
// and published ports (through the nft package), name resolution between
// containers of a user network, and the /etc/hosts, /etc/resolv.conf and
// /etc/hostname a container sees.
//
// There is no daemon. A network's configuration is a file under the data
// root; what is attached right now (one endpoint record per container and
// network, which is also the address allocation) lives under the run root,
// which does not survive a reboot, like the bridges and rules it describes.
// Every change takes one lock file shared by all berth processes, writes
// the record before it touches the kernel, and undoes what it did if a step
// fails: after a crash, a record may name a veth or rules that are gone, never
// the reverse, and Detach or Reclaim cleans either way.
//
// The "host" and "none" networks are listed for compatibility; they are
// modes the engine implements without this package.
package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/network/ipam"
)

// Drivers.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// The predefined networks.
const (
	DefaultNetwork = "bridge"
	HostNetwork    = "host"
	NoneNetwork    = "none"
)

// Options configure a Manager.
type Options struct {
	// Root holds network configurations (e.g. /var/lib/berth/network).
	Root string
	// RunRoot holds endpoints and DNS state (e.g. /run/berth/network).
	RunRoot string
	// DefaultSubnet is the subnet of the default network when it is first
	// made (default 10.88.0.0/16).
	DefaultSubnet string
	// DefaultBridge is the default network's bridge (default berth0).
	DefaultBridge string
	// Table is the nftables table berth owns (default "berth").
	Table string
	// DNSServer is the command that serves a user network's names: the
	// network's state directory is appended to it, and the program must
	// call ServeDNSMain with it. Without it, user networks have no name
	// resolution and containers get the host's resolvers.
	DNSServer []string
	// UserSubnets is the pool that user networks without --subnet are
	// given a /24 from (default 10.89.0.0/16).
	UserSubnets string
	// Trace, if not nil, is called after each step of Attach and Release
	// with the step's name (the engine's BERTH_TRACE).
	Trace func(step string)
	// Endpoints, if not nil, keeps the endpoint records read, for the
	// next Manager of a long-lived process.
	Endpoints *EndpointCache
}

// Network is a network's configuration, as stored.
type Network struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Driver   string            `json:"driver"`
	Created  time.Time         `json:"created"`
	Bridge   string            `json:"bridge,omitempty"`
	Subnet   netip.Prefix      `json:"subnet,omitzero"`
	Gateway  netip.Addr        `json:"gateway,omitzero"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Predefined reports whether n is one of bridge, host and none, which are
// made by berth and cannot be removed.
func (n *Network) Predefined() bool {
	return n.Name == DefaultNetwork || n.Name == HostNetwork || n.Name == NoneNetwork
}

// DNS reports whether containers on n resolve each other by name: on user
// bridge networks, as with Docker (the default network has no names).
func (n *Network) DNS() bool { return n.Driver == DriverBridge && n.Name != DefaultNetwork }

// Manager manages the networks under one data root.
type Manager struct {
	opts Options
}

// mark reports a step to the trace, if there is one.
func (m *Manager) mark(step string) {
	if m.opts.Trace != nil {
		m.opts.Trace(step)
	}
}

// New returns a manager over opts. It touches nothing on disk until used.
func New(opts Options) (*Manager, error) {
	if opts.Root == "" || opts.RunRoot == "" {
		return nil, errors.New("network: root and run root must be set")
	}
	if opts.DefaultSubnet == "" {
		opts.DefaultSubnet = "10.88.0.0/16"
	}
	if opts.DefaultBridge == "" {
		opts.DefaultBridge = "berth0"
	}
	if opts.Table == "" {
		opts.Table = "berth"
	}
	if opts.UserSubnets == "" {
		opts.UserSubnets = "10.89.0.0/16"
	}
	if _, err := ipam.ParseSubnet(opts.DefaultSubnet); err != nil {
		return nil, fmt.Errorf("default network: %w", err)
	}
	return &Manager{opts: opts}, nil
}

func (m *Manager) netDir() string               { return filepath.Join(m.opts.Root, "networks") }
func (m *Manager) netFile(id string) string     { return filepath.Join(m.netDir(), id+".json") }
func (m *Manager) lockPath() string             { return filepath.Join(m.opts.Root, "lock") }
func (m *Manager) stateDir(netID string) string { return filepath.Join(m.opts.RunRoot, netID) }
func (m *Manager) endpointDir(netID string) string {
	return filepath.Join(m.stateDir(netID), "endpoints")
}

// lock takes the lock every change to networks and endpoints holds.
func (m *Manager) lock() (*fsutil.Lock, error) {
	if err := os.MkdirAll(m.netDir(), 0o700); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	return fsutil.LockFile(m.lockPath())
}

// CreateOptions describe a network to create.
type CreateOptions struct {
	Name     string
	Driver   string // "bridge" or ""
	Subnet   string // CIDR; "" picks a free /24 of the user pool
	Gateway  string // "" is the subnet's first address
	Internal bool
	Labels   map[string]string
}

// Create makes a user network. Nothing is created in the kernel until a
// container is attached.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (*Network, error) {
	if err := validName(o.Name); err != nil {
		return nil, err
	}
	if o.Driver != "" && o.Driver != DriverBridge {
		return nil, errdefs.InvalidArgument("network driver %q is not supported: only %q", o.Driver, DriverBridge)
	}
	if o.Gateway != "" && o.Subnet == "" {
		return nil, errdefs.InvalidArgument("--gateway needs --subnet")
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
	for _, n := range nets {
		if n.Name == o.Name {
			return nil, errdefs.AlreadyExists("network with name %s already exists", o.Name)
		}
	}
	var subnet netip.Prefix
	if o.Subnet != "" {
		if subnet, err = ipam.ParseSubnet(o.Subnet); err != nil {
			return nil, err
		}
		for _, n := range nets {
			if n.Subnet.IsValid() && ipam.Overlaps(n.Subnet, subnet) {
				return nil, errdefs.Conflict("subnet %s overlaps with network %s (%s)", subnet, n.Name, n.Subnet)
			}
		}
	} else if subnet, err = m.pickSubnet(nets); err != nil {
		return nil, err
	}
	gw, err := ipam.Gateway(subnet, o.Gateway)
	if err != nil {
		return nil, err
	}
	id := newID()
	n := &Network{
		ID: id, Name: o.Name, Driver: DriverBridge, Created: time.Now().UTC(),
		Bridge: "br-" + id[:12], Subnet: subnet, Gateway: gw, Internal: o.Internal, Labels: o.Labels,
	}
	if err := m.write(n); err != nil {
		return nil, err
	}
	return n, nil
}

// pickSubnet returns the first /24 of the user pool that overlaps neither
// another network nor a route of the host.
func (m *Manager) pickSubnet(nets []*Network) (netip.Prefix, error) {
	pool, err := netip.ParsePrefix(m.opts.UserSubnets)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("user subnet pool: %w", err)
	}
	routes, err := hostRoutes()
	if err != nil {
		return netip.Prefix{}, err
	}
	for p := netip.PrefixFrom(pool.Masked().Addr(), 24); pool.Contains(p.Addr()); {
		free := !slices.ContainsFunc(nets, func(n *Network) bool { return n.Subnet.IsValid() && n.Subnet.Overlaps(p) }) &&
			!slices.ContainsFunc(routes, func(r netip.Prefix) bool { return r.Bits() > 0 && r.Overlaps(p) })
		if free {
			return p, nil
		}
		next := ipam.Broadcast(p).Next()
		if !next.IsValid() {
			break
		}
		p = netip.PrefixFrom(next, 24)
	}
	return netip.Prefix{}, errdefs.InUse("no free subnet left in %s: give one with --subnet", pool)
}

func validName(name string) error {
	if name == "" {
		return errdefs.InvalidArgument("network name must not be empty")
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && strings.ContainsRune("_.-", r)
		if !ok {
			return errdefs.InvalidArgument("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
		}
	}
	return nil
}

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (m *Manager) write(n *Network) error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(m.netFile(n.ID), b, 0o600); err != nil {
		return fmt.Errorf("write network %s: %w", n.Name, err)
	}
	return fsutil.SyncDir(m.netDir())
}

// ensurePredefined lists the networks, making bridge, host and none first
// if they do not exist. Called with the lock held.
func (m *Manager) ensurePredefined() ([]*Network, error) {
	nets, err := m.list()
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range nets {
		have[n.Name] = true
	}
	sub, _ := ipam.ParseSubnet(m.opts.DefaultSubnet) // checked by New
	gw, _ := ipam.Gateway(sub, "")
	for _, n := range []*Network{
		{Name: DefaultNetwork, Driver: DriverBridge, Bridge: m.opts.DefaultBridge, Subnet: sub, Gateway: gw},
		{Name: HostNetwork, Driver: DriverHost},
		{Name: NoneNetwork, Driver: DriverNull},
	} {
		if have[n.Name] {
			continue
		}
		n.ID, n.Created = newID(), time.Now().UTC()
		if err := m.write(n); err != nil {
			return nil, err
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// list reads every network's file.
func (m *Manager) list() ([]*Network, error) {
	ents, err := os.ReadDir(m.netDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var out []*Network
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.netDir(), name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while we listed
		} else if err != nil {
			return nil, fmt.Errorf("list networks: %w", err)
		}
		var n Network
		if err := json.Unmarshal(b, &n); err != nil {
			return nil, errdefs.DataCorrupt("network file %s: %v", name, err)
		}
		out = append(out, &n)
	}
	slices.SortFunc(out, func(a, b *Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// List returns every network, the predefined ones included.
func (m *Manager) List(ctx context.Context) ([]*Network, error) {
	nets, err := m.list()
	if err != nil {
		return nil, err
	}
	if n := 0; true {
		for _, nw := range nets {
			if nw.Predefined() {
				n++
			}
		}
		if n == 3 {
			return nets, nil
		}
	}
	l, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	return m.ensurePredefined()
}

// Get finds a network by full ID, name, or unique ID prefix, as docker
// does.
func (m *Manager) Get(ctx context.Context, ref string) (*Network, error) {
	nets, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	return find(nets, ref)
}

func find(nets []*Network, ref string) (*Network, error) {
	if ref == "" {
		return nil, errdefs.InvalidArgument("network name must not be empty")
	}
	for _, n := range nets {
		if n.ID == ref {
			return n, nil
		}
	}
	for _, n := range nets {
		if n.Name == ref {
			return n, nil
		}
	}
	var hit *Network
	for _, n := range nets {
		if strings.HasPrefix(n.ID, ref) {
			if hit != nil {
				return nil, errdefs.Conflict("network %s is ambiguous (more than one network matches)", ref)
			}
			hit = n
		}
	}
	if hit == nil {
		return nil, errdefs.NotFound("network %s not found", ref)
	}
	return hit, nil
}

// Remove deletes a user network. A network with containers attached is in
// use: detach them (or Reclaim the dead) first.
func (m *Manager) Remove(ctx context.Context, ref string) error {
	l, err := m.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	nets, err := m.ensurePredefined()
	if err != nil {
		return err
	}
	n, err := find(nets, ref)
	if err != nil {
		return err
	}
	return m.removeLocked(ctx, n)
}

func (m *Manager) removeLocked(ctx context.Context, n *Network) error {
	if n.Predefined() {
		return errdefs.InvalidArgument("%s is a pre-defined network and cannot be removed", n.Name)
	}
	eps, err := m.endpoints(n.ID)
	if err != nil {
		return err
	}
	if len(eps) > 0 {
		return errdefs.InUse("error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
	}
	conns, err := m.connectedTo(n.ID)
	if err != nil {
		return err
	}
	if len(conns) > 0 {
		for i, id := range conns {
			conns[i] = shortID(id)
		}
		return errdefs.InUse("error while removing network: network %s id %s has containers connected (%s): disconnect them first",
			n.Name, n.ID, strings.Join(conns, ", "))
	}
	// Teardown is idempotent: the last detach did it, unless a crash
	// came between.
	if err := m.teardown(ctx, n); err != nil {
		return err
	}
	if err := os.Remove(m.netFile(n.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	if err := os.RemoveAll(m.stateDir(n.ID)); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	return nil
}

// attachable finds the network ref a container is to be attached to (for
// what, in words, "attach to" or "connect to"): a bridge network, where
// aliases need one with a resolver.
func attachable(nets []*Network, ref string, aliases []string, what string) (*Network, error) {
	n, err := find(nets, ref)
	if err != nil {
		return nil, err
	}
	if n.Driver != DriverBridge {
		return nil, errdefs.InvalidArgument("network %s is a mode (--network %s), not a network to %s", n.Name, n.Name, what)
	}
	if len(aliases) > 0 && !n.DNS() {
		return nil, errdefs.InvalidArgument("network-scoped aliases are only supported for user-defined networks")
	}
	return n, nil
}

// Reset undoes every network of this root on the host, its default one
// included: bridges, firewall rules, resolvers, records and state. The
// engine calls it for `system reset`, once every container is gone; an
// endpoint still recorded is detached first.
func (m *Manager) Reset(ctx context.Context) error {
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
		eps, err := m.endpoints(n.ID)
		if err != nil {
			errs = append(errs, err)
		}
		for _, ep := range eps {
			errs = append(errs, m.detachLocked(ctx, n, ep, true))
		}
		errs = append(errs, m.teardown(ctx, n))
		if err := os.RemoveAll(m.stateDir(n.ID)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range []string{m.netDir(), m.connDir()} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reset networks: %w", err)
	}
	return nil
}

// Prune removes every user network without containers that keep accepts,
// and returns the names of those removed.
func (m *Manager) Prune(ctx context.Context, keep func(*Network) bool) ([]string, error) {
	l, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	nets, err := m.ensurePredefined()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range nets {
		if n.Predefined() || (keep != nil && keep(n)) {
			continue
		}
		eps, err := m.endpoints(n.ID)
		if err != nil {
			return removed, err
		}
		if len(eps) > 0 {
			continue
		}
		if conns, err := m.connectedTo(n.ID); err != nil {
			return removed, err
		} else if len(conns) > 0 {
			continue
		}
		if err := m.removeLocked(ctx, n); err != nil {
			return removed, err
		}
		removed = append(removed, n.Name)
	}
	return removed, nil
}
