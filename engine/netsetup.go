package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network"
)

// attachesNetwork reports whether a network mode gives the container a
// network of berth's (the default bridge or a user network), as opposed to
// none, host or another container's.
func attachesNetwork(mode string) bool {
	switch {
	case mode == "none" || mode == "host" || strings.HasPrefix(mode, "container:"):
		return false
	}
	return true
}

func networkName(mode string) string {
	if mode == "bridge" || mode == "default" {
		return ""
	}
	return mode
}

// setupNetwork gives a starting container its network: for a bridge or a
// user network, a network namespace of its own (bind-mounted in its run
// directory, so that it exists before the runtime creates the container
// and the /etc files can name the address) attached with its published
// ports; then its /etc/hosts, /etc/resolv.conf and /etc/hostname. It
// returns the namespace for the spec ("" new, "host", or a path) and the
// container's NetworkSettings, for the caller to record (with the running
// state: one write of the record, not two).
//
// Before it is done, it calls early (once, and on every path) with the
// namespace for the spec once the namespace exists and the /etc files do
// (their content is written in place later): what the runtime needs to
// create the container, whose init may then set itself up while the
// network is finished. The container's process must not start before
// setupNetwork has returned.
func (e *Engine) setupNetwork(ctx context.Context, c *container.Container, dir string, early func(netns string, err error)) (string, container.NetworkSettings, error) {
	var once sync.Once
	signal := func(netns string, err error) { once.Do(func() { early(netns, err) }) }
	netns, eps, err := e.attachNetwork(ctx, c, dir, signal)
	signal(netns, err) // on the paths that fail before the namespace
	if err != nil {
		return "", container.NetworkSettings{}, err
	}
	return netns, networkSettings(c, eps, netns), nil
}

func (e *Engine) attachNetwork(ctx context.Context, c *container.Container, dir string, early func(netns string, err error)) (string, []*network.Endpoint, error) {
	mode := c.HostConfig.NetworkMode
	tr := newRunTrace(c.ID)
	netns, err := e.netnsFor(ctx, c)
	if err != nil {
		return "", nil, err
	}
	// The /etc files exist, empty, before the runtime binds them; their
	// content is written in place once the addresses are known.
	if err := network.TouchFiles(dir); err != nil {
		return "", nil, err
	}
	var eps []*network.Endpoint
	if attachesNetwork(mode) {
		nm, err := e.tracedNetworkManager(tr)
		if err != nil {
			return "", nil, err
		}
		netns = filepath.Join(dir, "netns")
		req := network.AttachRequest{
			Network: networkName(mode),
			Name:    c.DisplayName(),
			Aliases: c.Berth.Aliases,
			IP:      c.Berth.IP,
			MAC:     c.Berth.MAC,
			DNS:     c.HostConfig.Dns,
		}
		// A sandbox made ahead (a namespace with its veth) if the
		// monitor has one ready, mounted while Attach works; else the
		// namespace is made while Attach plans. Attach waits for either
		// before it is done or opens the namespace, and every way out
		// waits for it too.
		var ready func() error
		if sb := e.takeSandbox(); sb != nil {
			defer sb.Close()
			ready = startMount(func() error { return sb.Mount(netns) })
			req.Sandbox = sb
		} else {
			ready = startMount(func() error { return newNetns(netns) })
		}
		req.NetnsReady = ready
		go func() {
			if err := ready(); err != nil {
				early("", err)
				return
			}
			early(netns, nil)
		}()
		tr.mark("net: netns")
		fail := func(err error) (string, []*network.Endpoint, error) {
			if ready() == nil {
				removeNetns(netns)
			}
			return "", nil, err
		}
		ports, err := publishedPorts(c)
		if err != nil {
			return fail(err)
		}
		req.Ports = ports
		ep, err := nm.Attach(ctx, c.ID, netns, req)
		if errors.Is(err, network.ErrSandbox) {
			// A sandbox the kernel no longer matches (Attach undid what
			// it did with it): once more without it, in the same
			// namespace, which the runtime may have joined already.
			req.Sandbox = nil
			ep, err = nm.Attach(ctx, c.ID, netns, req)
		}
		if err != nil {
			return fail(err)
		}
		eps = append(eps, ep)
		// The networks `network connect` added (eth1, ...).
		conns, err := nm.Connections(ctx, c.ID)
		for _, cn := range conns {
			if err != nil || cn.NetworkID == ep.NetworkID {
				continue
			}
			var more *network.Endpoint
			more, err = nm.Attach(ctx, c.ID, netns, network.AttachRequest{
				Network: cn.NetworkID, Name: c.DisplayName(), Aliases: cn.Aliases, IP: cn.IP, DNS: c.HostConfig.Dns,
			})
			if err != nil {
				err = fmt.Errorf("connect to network %.12s: %w", cn.NetworkID, err)
				break
			}
			eps = append(eps, more)
		}
		if err != nil {
			e.teardownNetwork(ctx, c.ID)
			return "", nil, err
		}
	}
	if !attachesNetwork(mode) {
		early(netns, nil)
	}
	files := network.Files{
		Hostname:   c.Config.Hostname,
		Names:      []string{c.DisplayName()},
		Endpoints:  eps,
		ExtraHosts: c.HostConfig.ExtraHosts,
		DNS:        c.HostConfig.Dns,
		DNSSearch:  c.HostConfig.DnsSearch,
	}
	if err := network.WriteFiles(dir, files); err != nil {
		e.teardownNetwork(ctx, c.ID)
		return "", nil, err
	}
	tr.mark("net: files")
	return netns, eps, nil
}

// teardownNetwork detaches a container from its networks and removes its
// namespace. It is safe to repeat. The container has exited (or never
// started), so its namespace dies with the unmount, and the kernel deletes
// its veths with it: Release does not wait for that (see network.Release).
func (e *Engine) teardownNetwork(ctx context.Context, id string) {
	tr := newRunTrace(id)
	// The namespace's unmount waits for nothing Release does.
	var wg sync.WaitGroup
	wg.Go(func() { removeNetns(filepath.Join(e.runDir(id), "netns")) })
	if nm, err := e.tracedNetworkManager(tr); err == nil {
		nm.Release(ctx, id)
	}
	wg.Wait()
	// The container's start is over: the monitor's next sandbox is made
	// now, before the next start wants it.
	if e.sandboxes != nil {
		e.sandboxes.Refill(network.RefillDelay)
	}
	tr.mark("net: netns unmounted")
}

// publishedPorts are the container's -p mappings and, with -P, its exposed
// ports on free host ports.
func publishedPorts(c *container.Container) ([]network.PortMapping, error) {
	ports, err := network.ParsePorts(c.Berth.Publish)
	if err != nil {
		return nil, err
	}
	if c.HostConfig.PublishAllPorts {
		var exposed []string
		for p := range c.Config.ExposedPorts {
			exposed = append(exposed, p)
		}
		slices.Sort(exposed)
		all, err := network.PublishAll(exposed)
		if err != nil {
			return nil, err
		}
		for _, m := range all {
			if !slices.ContainsFunc(ports, func(p network.PortMapping) bool {
				return p.ContainerPort == m.ContainerPort && p.Proto == m.Proto
			}) {
				ports = append(ports, m)
			}
		}
	}
	return ports, nil
}

func networkSettings(c *container.Container, eps []*network.Endpoint, netns string) container.NetworkSettings {
	ns := container.NetworkSettings{SandboxKey: netns, Ports: map[string][]container.PortBinding{}, Networks: map[string]*container.EndpointSettings{}}
	for p := range c.Config.ExposedPorts {
		ns.Ports[p] = nil
	}
	for i, ep := range eps {
		name := ep.NetworkName
		es := &container.EndpointSettings{
			Aliases: ep.Aliases, NetworkID: ep.NetworkID, EndpointID: ep.EndpointID,
			Gateway: ep.Gateway.String(), IPAddress: ep.IP.String(), IPPrefixLen: ep.PrefixLen, MacAddress: ep.MAC,
		}
		ns.Networks[name] = es
		if i == 0 {
			ns.IPAddress, ns.Gateway, ns.MacAddress = es.IPAddress, es.Gateway, es.MacAddress
		}
		for _, m := range ep.Ports {
			key := strconv.Itoa(int(m.ContainerPort)) + "/" + m.Proto
			ip := "0.0.0.0"
			if m.HostIP.IsValid() {
				ip = m.HostIP.String()
			}
			ns.Ports[key] = append(ns.Ports[key], container.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(m.HostPort))})
		}
	}
	if c.HostConfig.NetworkMode == "none" {
		ns.Networks["none"] = &container.EndpointSettings{}
	}
	if c.HostConfig.NetworkMode == "host" {
		ns.Networks["host"] = &container.EndpointSettings{}
	}
	return ns
}

// startMount starts mount, which makes a network namespace bind-mounted,
// and returns a function that waits for it (and may be called again).
func startMount(mount func() error) (wait func() error) {
	errc := make(chan error, 1)
	go func() { errc <- mount() }()
	return sync.OnceValue(func() error {
		if err := <-errc; err != nil {
			return fmt.Errorf("network namespace: %w", err)
		}
		return nil
	})
}

// newNetns makes a network namespace bind-mounted at path, on a thread
// locked to its goroutine that goes back to the process's namespace before
// it is unlocked. A thread left in the namespace to end with its goroutine
// would not always end: the Go runtime cannot end the main thread and parks
// it for good instead, which kept a container's namespace, and its veth,
// alive as long as the monitor.
func newNetns(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			goruntime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			errc <- os.NewSyscallError("unshare(CLONE_NEWNET)", err)
			return
		}
		err = os.NewSyscallError("mount", unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""))
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			// The thread stays locked: it ends with the goroutine.
			errc <- errors.Join(err, os.NewSyscallError("setns", serr))
			return
		}
		goruntime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return err
	}
	return nil
}

func removeNetns(path string) {
	unix.Unmount(path, unix.MNT_DETACH)
	os.Remove(path)
}

// validateNetwork checks the container's network mode names something that
// exists, before the container is made.
func (e *Engine) validateNetwork(ctx context.Context, c *container.Container) error {
	mode := c.HostConfig.NetworkMode
	if mode == "none" || mode == "host" {
		if len(c.Berth.Publish) > 0 || c.HostConfig.PublishAllPorts {
			// Docker ignores them with a warning; berth says so plainly.
			return errdefs.InvalidArgument("published ports need a bridge or user network, not --network %s", mode)
		}
		return nil
	}
	if strings.HasPrefix(mode, "container:") {
		_, err := e.Container(ctx, strings.TrimPrefix(mode, "container:"))
		return err
	}
	ports, err := network.ParsePorts(c.Berth.Publish)
	if err != nil {
		return err
	}
	nm, err := e.networkManager()
	if err != nil {
		return err
	}
	if networkName(mode) != "" {
		if _, err := nm.Get(ctx, mode); err != nil {
			return err
		}
	}
	// A host port already taken fails `run` before the container exists;
	// Attach checks again, under the network lock, when it starts.
	return nm.CheckPorts(ctx, ports)
}

// takeSandbox takes a ready network namespace from the monitor's pool, or
// returns nil (outside the monitor, or none ready).
func (e *Engine) takeSandbox() *network.Sandbox {
	if e.sandboxes == nil {
		return nil
	}
	return e.sandboxes.Take()
}
