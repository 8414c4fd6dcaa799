package engine

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/network"
)

// networkManager opens the network package's manager over this engine's
// roots. It is cheap (nothing is read until used), so it is made per call.
//
// Its bridge and subnets are networkDefaults'. The resolver of user networks is this very program re-executed
// as `berth network dns-serve DIR`.
func (e *Engine) networkManager() (*network.Manager, error) {
	return e.tracedNetworkManager(nil)
}

// tracedNetworkManager is networkManager with a trace of its Attach and
// Release steps (see runTrace).
func (e *Engine) tracedNetworkManager(tr *runTrace) (*network.Manager, error) {
	d := e.networkDefaults()
	opts := network.Options{
		Root:          filepath.Join(e.root, "network"),
		RunRoot:       filepath.Join(e.runRoot, "network"),
		DefaultSubnet: d.Subnet,
		DefaultBridge: d.Bridge,
		UserSubnets:   d.UserSubnets,
		Endpoints:     e.endpoints,
	}
	if tr != nil {
		opts.Trace = tr.mark
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "berth" {
		opts.DNSServer = []string{exe, "network", "dns-serve"}
	}
	return network.New(opts)
}

// NetworkResource is a network as `network inspect` shows it, in Docker's
// shape.
type NetworkResource struct {
	Name       string
	ID         string `json:"Id"`
	Created    time.Time
	Scope      string
	Driver     string
	EnableIPv6 bool
	IPAM       NetworkIPAM
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigFrom struct{ Network string }
	ConfigOnly bool
	Containers map[string]EndpointResource
	Options    map[string]string
	Labels     map[string]string
}

// NetworkIPAM is a network's address configuration.
type NetworkIPAM struct {
	Driver  string
	Options map[string]string
	Config  []IPAMConfig
}

// IPAMConfig is one subnet of a network.
type IPAMConfig struct {
	Subnet  string `json:",omitempty"`
	Gateway string `json:",omitempty"`
}

// EndpointResource is one container of a network in `network inspect`.
type EndpointResource struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string
	IPv6Address string
}

func networkResource(n *network.Network, eps []*network.Endpoint) NetworkResource {
	r := NetworkResource{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
		IPAM:       NetworkIPAM{Driver: "default", Config: []IPAMConfig{}},
		Internal:   n.Internal,
		Containers: map[string]EndpointResource{},
		Options:    map[string]string{},
		Labels:     n.Labels,
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	if n.Subnet.IsValid() {
		r.IPAM.Config = append(r.IPAM.Config, IPAMConfig{Subnet: n.Subnet.String(), Gateway: n.Gateway.String()})
	}
	if n.Bridge != "" {
		r.Options["com.docker.network.bridge.name"] = n.Bridge
	}
	for _, ep := range eps {
		r.Containers[ep.ContainerID] = EndpointResource{
			Name: ep.Name, EndpointID: ep.EndpointID, MacAddress: ep.MAC, IPv4Address: ep.Prefix().String(),
		}
	}
	return r
}

// NetworkCreate makes a user network and returns it.
func (e *Engine) NetworkCreate(ctx context.Context, opts network.CreateOptions) (*NetworkResource, error) {
	m, err := e.networkManager()
	if err != nil {
		return nil, err
	}
	n, err := m.Create(ctx, opts)
	if err != nil {
		return nil, err
	}
	r := networkResource(n, nil)
	return &r, nil
}

// NetworkInspect returns a network by name, ID or unique ID prefix, with
// its containers.
func (e *Engine) NetworkInspect(ctx context.Context, ref string) (*NetworkResource, error) {
	m, err := e.networkManager()
	if err != nil {
		return nil, err
	}
	n, err := m.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	eps, err := m.Endpoints(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	r := networkResource(n, eps)
	return &r, nil
}

// NetworkList returns the networks that match f (driver, id, label, name,
// scope, type=custom|builtin, dangling), sorted by name.
func (e *Engine) NetworkList(ctx context.Context, f filters.Args) ([]NetworkResource, error) {
	for _, t := range f.Get("type") {
		if t != "custom" && t != "builtin" {
			return nil, errdefs.InvalidArgument("invalid filter: 'type'='%s'", t)
		}
	}
	dangling, danglingSet, err := f.Bool("dangling")
	if err != nil {
		return nil, err
	}
	m, err := e.networkManager()
	if err != nil {
		return nil, err
	}
	nets, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []NetworkResource
	for _, n := range nets {
		typ := "custom"
		if n.Predefined() {
			typ = "builtin"
		}
		eps, err := m.Endpoints(ctx, n.ID)
		if err != nil {
			return nil, err
		}
		ok := f.Match("driver", n.Driver) && f.MatchLabels(n.Labels) && f.Match("name", n.Name) &&
			f.Match("scope", "local") && f.Match("type", typ) && matchIDPrefix(f, n.ID) &&
			(!danglingSet || dangling == (len(eps) == 0 && !n.Predefined()))
		if ok {
			out = append(out, networkResource(n, eps))
		}
	}
	return out, nil
}

func matchIDPrefix(f filters.Args, id string) bool {
	ids := f.Get("id")
	if len(ids) == 0 {
		return true
	}
	for _, p := range ids {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// NetworkRemove removes a user network that no container uses. Containers
// the engine knows to be gone are expected to have been detached (see
// network.Manager.Reclaim).
func (e *Engine) NetworkRemove(ctx context.Context, ref string) error {
	m, err := e.networkManager()
	if err != nil {
		return err
	}
	e.pruneConnections(ctx, m)
	return m.Remove(ctx, ref)
}

// NetworkPrune removes the user networks no container uses that match f
// (label, until), and returns their names.
func (e *Engine) NetworkPrune(ctx context.Context, f filters.Args) ([]string, error) {
	var until time.Time
	for _, u := range f.Get("until") {
		t, err := parseUntil(u)
		if err != nil {
			return nil, err
		}
		until = t
	}
	m, err := e.networkManager()
	if err != nil {
		return nil, err
	}
	e.pruneConnections(ctx, m)
	return m.Prune(ctx, func(n *network.Network) bool {
		return !f.MatchLabels(n.Labels) || !until.IsZero() && !n.Created.Before(until)
	})
}

// NetworkConnectOptions are `network connect`'s flags.
type NetworkConnectOptions struct {
	IP      string
	Aliases []string
}

// NetworkConnect connects a container to one more network. A running
// container is attached at once: a new interface (eth1, ...) in its
// namespace, and its /etc/hosts and /etc/resolv.conf rewritten in place
// (they are bind-mounted). Either way the connection is kept (see
// network.Connection) and applies at each start, as Docker's does: a
// stopped container is attached when it next starts.
func (e *Engine) NetworkConnect(ctx context.Context, ref, ctr string, opts NetworkConnectOptions) error {
	m, err := e.networkManager()
	if err != nil {
		return err
	}
	n, err := m.Get(ctx, ref)
	if err != nil {
		return err
	}
	c, err := e.Container(ctx, ctr)
	if err != nil {
		return err
	}
	switch mode := c.HostConfig.NetworkMode; {
	case n.Driver != network.DriverBridge:
		return errdefs.InvalidArgument("container cannot be disconnected from host network or connected to host network")
	case mode == "none":
		return errdefs.InvalidArgument("container cannot be connected to multiple networks with one of the networks in private (none) mode")
	case mode == "host":
		return errdefs.InvalidArgument("container sharing network namespace with another container or host cannot be connected to any other network")
	case strings.HasPrefix(mode, "container:"):
		return errdefs.InvalidArgument("container sharing network namespace with another container or host cannot be connected to any other network")
	}
	if primary, err := m.Get(ctx, cmp.Or(networkName(c.HostConfig.NetworkMode), network.DefaultNetwork)); err == nil && primary.ID == n.ID {
		return errdefs.AlreadyExists("container %s is already connected to network %s", c.DisplayName(), n.Name)
	}
	e.pruneConnections(ctx, m)
	conn := network.Connection{Aliases: opts.Aliases, IP: opts.IP}
	if !c.State.Running {
		if _, err := m.AddConnection(ctx, c.ID, n.ID, conn); err != nil {
			return err
		}
		_, err := e.containers.Update(ctx, c.ID, func(c *container.Container) error {
			if c.NetworkSettings.Networks == nil {
				c.NetworkSettings.Networks = map[string]*container.EndpointSettings{}
			}
			c.NetworkSettings.Networks[n.Name] = &container.EndpointSettings{NetworkID: n.ID, Aliases: opts.Aliases}
			return nil
		})
		return err
	}
	netns := filepath.Join(e.runDir(c.ID), "netns")
	if _, err := os.Stat(netns); err != nil {
		netns = fmt.Sprintf("/proc/%d/ns/net", c.State.Pid)
	}
	if _, err := m.Attach(ctx, c.ID, netns, network.AttachRequest{
		Network: n.ID, Name: c.DisplayName(), Aliases: opts.Aliases, IP: opts.IP, DNS: c.HostConfig.Dns,
	}); err != nil {
		return err
	}
	_, err = m.AddConnection(ctx, c.ID, n.ID, conn)
	if err == nil {
		err = e.networksChanged(ctx, m, c.ID)
	}
	if err != nil {
		m.RemoveConnection(ctx, c.ID, n.ID)
		m.Disconnect(ctx, c.ID, n.ID)
		e.networksChanged(ctx, m, c.ID)
		return err
	}
	return nil
}

// pruneConnections forgets the network connections of containers that are
// gone (removed: the network package is not told).
func (e *Engine) pruneConnections(ctx context.Context, m *network.Manager) {
	m.PruneConnections(ctx, func(id string) bool {
		_, err := e.containers.Get(ctx, id)
		return !errdefs.IsNotFound(err)
	})
}

// networksChanged brings a running container's NetworkSettings, /etc/hosts
// and /etc/resolv.conf up to date with its endpoints.
func (e *Engine) networksChanged(ctx context.Context, m *network.Manager, id string) error {
	eps, err := m.ContainerEndpoints(ctx, id)
	if err != nil {
		return err
	}
	c, err := e.containers.Update(ctx, id, func(c *container.Container) error {
		c.NetworkSettings = networkSettings(c, eps, c.NetworkSettings.SandboxKey)
		return nil
	})
	if err != nil {
		return err
	}
	return network.UpdateFiles(e.runDir(id), network.Files{
		Hostname:   c.Config.Hostname,
		Names:      []string{c.DisplayName()},
		Endpoints:  eps,
		ExtraHosts: c.HostConfig.ExtraHosts,
		DNS:        c.HostConfig.Dns,
		DNSSearch:  c.HostConfig.DnsSearch,
	})
}

// NetworkDisconnect detaches a container, named by ID, name or ID prefix
// (or, for a container gone from the store, by its name on the network),
// from a network.
func (e *Engine) NetworkDisconnect(ctx context.Context, ref, ctr string, force bool) error {
	m, err := e.networkManager()
	if err != nil {
		return err
	}
	n, err := m.Get(ctx, ref)
	if err != nil {
		return err
	}
	if n.Driver != network.DriverBridge {
		return errdefs.InvalidArgument("container cannot be disconnected from host network or connected to host network")
	}
	c, cerr := e.Container(ctx, ctr)
	if cerr == nil {
		had, err := m.RemoveConnection(ctx, c.ID, n.ID)
		if err != nil {
			return err
		}
		if err := m.Disconnect(ctx, c.ID, n.ID); err != nil && !(had && errdefs.IsNotFound(err)) {
			return err
		}
		if c.State.Running {
			return e.networksChanged(ctx, m, c.ID)
		}
		_, err = e.containers.Update(ctx, c.ID, func(c *container.Container) error {
			delete(c.NetworkSettings.Networks, n.Name)
			return nil
		})
		return err
	}
	if !errdefs.IsNotFound(cerr) {
		return cerr
	}
	eps, err := m.Endpoints(ctx, n.ID)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.ContainerID == ctr || ep.Name == ctr || len(ctr) >= 12 && strings.HasPrefix(ep.ContainerID, ctr) {
			return m.Disconnect(ctx, ep.ContainerID, n.ID)
		}
	}
	return cerr
}
