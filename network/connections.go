package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/network/ipam"
)

// A Connection is a container's membership of a network beyond the one it
// was created on (`network connect`), kept under the data root: it lasts
// across the container's stops and starts, as Docker's does, until
// `network disconnect` or the container's removal. A container connected
// while stopped is attached when it next starts.
type Connection struct {
	NetworkID string   `json:"networkID"`
	Aliases   []string `json:"aliases,omitempty"`
	IP        string   `json:"ip,omitempty"`
}

func (m *Manager) connDir() string { return filepath.Join(m.opts.Root, "connections") }

func (m *Manager) connFile(containerID string) string {
	return filepath.Join(m.connDir(), containerID+".json")
}

// Connections returns the container's connections, in the order they were
// made.
func (m *Manager) Connections(ctx context.Context, containerID string) ([]Connection, error) {
	return m.readConnections(containerID)
}

func (m *Manager) readConnections(containerID string) ([]Connection, error) {
	b, err := os.ReadFile(m.connFile(containerID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read connections: %w", err)
	}
	var cs []Connection
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, errdefs.DataCorrupt("connections of %s: %v", shortID(containerID), err)
	}
	return cs, nil
}

func (m *Manager) writeConnections(containerID string, cs []Connection) error {
	if len(cs) == 0 {
		if err := os.Remove(m.connFile(containerID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write connections: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(m.connDir(), 0o700); err != nil {
		return fmt.Errorf("write connections: %w", err)
	}
	b, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(m.connFile(containerID), b, 0o600); err != nil {
		return fmt.Errorf("write connections: %w", err)
	}
	return nil
}

// AddConnection records a connection of the container to a user network
// (by name or ID): an error if the network is missing, not a bridge
// network, or already one of the container's connections.
func (m *Manager) AddConnection(ctx context.Context, containerID, network string, c Connection) (*Network, error) {
	l, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	nets, err := m.ensurePredefined()
	if err != nil {
		return nil, err
	}
	n, err := attachable(nets, network, c.Aliases, "connect to")
	if err != nil {
		return nil, err
	}
	if c.IP != "" {
		ip, err := netip.ParseAddr(c.IP)
		if err != nil || !ip.Is4() {
			return nil, errdefs.InvalidArgument("invalid IPv4 address %q (--ip)", c.IP)
		}
		if !ipam.Usable(n.Subnet, ip) || ip == n.Gateway {
			return nil, errdefs.InvalidArgument("address %s is not a free host address of network %s (%s)", ip, n.Name, n.Subnet)
		}
	}
	cs, err := m.readConnections(containerID)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(cs, func(x Connection) bool { return x.NetworkID == n.ID }) {
		return nil, errdefs.AlreadyExists("container %s is already connected to network %s", shortID(containerID), n.Name)
	}
	c.NetworkID = n.ID
	return n, m.writeConnections(containerID, append(cs, c))
}

// RemoveConnection forgets the container's connection to a network (by ID)
// and reports whether it had one.
func (m *Manager) RemoveConnection(ctx context.Context, containerID, networkID string) (bool, error) {
	l, err := m.lock()
	if err != nil {
		return false, err
	}
	defer l.Unlock()
	cs, err := m.readConnections(containerID)
	if err != nil {
		return false, err
	}
	n := len(cs)
	cs = slices.DeleteFunc(cs, func(x Connection) bool { return x.NetworkID == networkID })
	if len(cs) == n {
		return false, nil
	}
	return true, m.writeConnections(containerID, cs)
}

// ForgetConnections forgets every connection of the container (it is
// removed).
func (m *Manager) ForgetConnections(ctx context.Context, containerID string) error {
	if _, err := os.Stat(m.connFile(containerID)); errors.Is(err, fs.ErrNotExist) {
		return nil // none kept: no lock to take
	}
	l, err := m.lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	return m.writeConnections(containerID, nil)
}

// PruneConnections forgets the connections of every container that exists
// says is gone (removed while nothing told the network package).
func (m *Manager) PruneConnections(ctx context.Context, exists func(containerID string) bool) error {
	ents, err := os.ReadDir(m.connDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}
	var errs []error
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") || exists(id) {
			continue
		}
		errs = append(errs, m.ForgetConnections(ctx, id))
	}
	return errors.Join(errs...)
}

// connectedTo returns the containers with a connection to the network.
func (m *Manager) connectedTo(networkID string) ([]string, error) {
	ents, err := os.ReadDir(m.connDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	var out []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		cs, err := m.readConnections(id)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(cs, func(x Connection) bool { return x.NetworkID == networkID }) {
			out = append(out, id)
		}
	}
	return out, nil
}
