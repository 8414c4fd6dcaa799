package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// AttachRequest is what a container asks of a network.
type AttachRequest struct {
	// Network is the network's name or ID ("" is the default network).
	Network string
	// Name is the container's name; on a user network, other containers
	// resolve it, and each of Aliases, to this endpoint's address.
	Name    string
	Aliases []string
	// IP (--ip) and MAC (--mac-address) are chosen when empty.
	IP, MAC string
	// Ports are published from the host (-p, -P).
	Ports []PortMapping
	// DNS are the container's own --dns servers, which the network's
	// resolver forwards its queries for other names to.
	DNS []string
	// Interface is the interface's name in the container (default eth0,
	// eth1, ... in the order of attachment).
	Interface string
	// NetnsReady, if not nil, is called before the namespace is first
	// opened, and its error fails the attach: the caller may still be
	// making the namespace while Attach takes the lock, reads the records
	// and writes the allocation (each about half a millisecond).
	NetnsReady func() error
	// Sandbox, if not nil, is the namespace at the netns path, made ahead
	// with its veth (NewSandbox, SandboxPool): Attach configures it
	// instead of making a veth. It must be the container's first
	// interface. The caller closes it after Attach.
	Sandbox *Sandbox
}

// Endpoint is one container's attachment to one network: its record is
// also the allocation of its address and host ports.
type Endpoint struct {
	ContainerID string        `json:"containerID"`
	NetworkID   string        `json:"networkID"`
	NetworkName string        `json:"networkName"`
	EndpointID  string        `json:"endpointID"`
	Name        string        `json:"name,omitempty"`
	Aliases     []string      `json:"aliases,omitempty"`
	Interface   string        `json:"interface"` // in the container
	HostVeth    string        `json:"hostVeth"`  // on the host
	Netns       string        `json:"netns"`
	IP          netip.Addr    `json:"ip"`
	PrefixLen   int           `json:"prefixLen"`
	Gateway     netip.Addr    `json:"gateway"`
	MAC         string        `json:"mac"`
	Ports       []PortMapping `json:"ports,omitempty"`
	DNS         []string      `json:"dns,omitempty"`
	// DNSServer is the network's resolver (its gateway) on a user network
	// with name resolution; invalid otherwise.
	DNSServer netip.Addr `json:"dnsServer,omitzero"`

	// partial marks an endpoint made from the names alone, its record
	// unreadable: Detach then cleans everything it might have.
	partial bool
}

// Prefix is the endpoint's address with the network's prefix length.
func (e *Endpoint) Prefix() netip.Prefix { return netip.PrefixFrom(e.IP, e.PrefixLen) }

// owner is the tag of the endpoint's firewall rules.
func (e *Endpoint) owner() string { return "ctr:" + e.ContainerID + "/" + e.NetworkID[:12] }

// vethName names the host end of a container's veth on a network: the
// same name every time, so that a crash leaves nothing Detach cannot find.
func vethName(containerID, networkID string) string {
	h := sha256.Sum256([]byte(containerID + "/" + networkID))
	return "vb" + hex.EncodeToString(h[:])[:13]
}

func (m *Manager) endpointFile(netID, containerID string) string {
	return filepath.Join(m.endpointDir(netID), containerID+".json")
}

// endpoints reads the endpoint records of a network.
func (m *Manager) endpoints(netID string) ([]*Endpoint, error) {
	return m.opts.Endpoints.read(m.endpointDir(netID))
}

func readEndpoints(dir string) ([]*Endpoint, error) {
	return (*EndpointCache)(nil).read(dir)
}

// EndpointCache keeps the endpoint records a long-lived process (the
// container monitor) has read, so that reading a network's records again
// costs a stat per record rather than a read and a decode (every attach
// reads them all: 1.7 ms at 100 containers without it). A record is
// replaced by a rename, never written in place, so a file whose inode,
// size and change time are those of the one read holds the record read.
// A nil cache caches nothing.
type EndpointCache struct {
	mu sync.Mutex
	m  map[string]cachedEndpoint
	// lists are whole directories read, by directory, with the generation
	// (see generationFile) they were read at: while it stays the same,
	// reading the directory again costs a read of that file, not a stat
	// of every record.
	lists map[string]cachedList
}

type cachedList struct {
	gen string
	eps []*Endpoint
}

type cachedEndpoint struct {
	ino   uint64
	size  int64
	ctime unix.Timespec
	ep    Endpoint
}

// NewEndpointCache returns an empty cache.
func NewEndpointCache() *EndpointCache {
	return &EndpointCache{m: map[string]cachedEndpoint{}, lists: map[string]cachedList{}}
}

// generationFile, in a directory of endpoint records, changes whenever a
// record of the directory is written or removed (after the change, under
// the network lock): a random epoch chosen when the file is made, and a
// count. A directory without it (removed and made again, or written by a
// berth that did not keep it) is read record by record.
const generationFile = ".generation"

// generation reads the generation of the records in dir, "" if unknown.
// The directory's change time is part of it: a berth that does not keep
// the file still changes that when it adds or removes a record (if not
// within the clock's tick that the generation alone covers).
func generation(dir string) string {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, generationFile))
	if err != nil || len(b) != generationLen {
		return ""
	}
	return fmt.Sprintf("%s %d.%d %d", b[:generationLen-1], st.Ctim.Sec, st.Ctim.Nsec, st.Ino)
}

const generationLen = 16 + 1 + 20 + 1

// bumpGeneration records that a record of dir changed. It overwrites the
// file in place (one fixed width), so that the records' directory never
// changes for it; a reader that sees it torn sees an unknown generation.
func bumpGeneration(dir string) {
	p := filepath.Join(dir, generationFile)
	var epoch string
	var n uint64
	if b, err := os.ReadFile(p); err == nil && len(b) == generationLen {
		if _, err := fmt.Sscanf(string(b), "%16s %d", &epoch, &n); err != nil {
			epoch = ""
		}
	}
	if len(epoch) != 16 {
		epoch = newID()[:16]
		n = 0
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteAt([]byte(fmt.Sprintf("%s %020d\n", epoch, n+1)), 0)
}

// current returns the generation of dir if the cache holds its records
// as of it, "" otherwise.
func (c *EndpointCache) current(dir string) string {
	if c == nil {
		return ""
	}
	gen := generation(dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.lists[dir]; ok && gen != "" && l.gen == gen {
		return gen
	}
	return ""
}

// nextGeneration reports whether after is the generation that follows
// before: one bump, by this process's change, and no other in between.
func nextGeneration(before, after string) bool {
	var e1, e2 string
	var n1, n2 uint64
	if _, err := fmt.Sscanf(before, "%16s %d", &e1, &n1); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(after, "%16s %d", &e2, &n2); err != nil {
		return false
	}
	return e1 == e2 && n2 == n1+1
}

// forget drops the cached list of dir.
func (c *EndpointCache) forget(dir string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.lists, dir)
	c.mu.Unlock()
}

// changed brings the cached list of dir up to date with a change this
// process made under the network lock: the record of containerID is now
// ep (nil: removed). before is what current returned ahead of the change:
// the list was current then, and nobody else changed the directory since
// (the lock), so the list with the change is current at the generation
// now. Without a current list, the next read reads the directory.
func (c *EndpointCache) changed(dir, before, containerID string, ep *Endpoint) {
	if c == nil {
		return
	}
	after := generation(dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.lists[dir]
	if !ok || before == "" || l.gen != before || !nextGeneration(before, after) {
		delete(c.lists, dir)
		return
	}
	eps := slices.DeleteFunc(l.eps, func(e *Endpoint) bool { return e.ContainerID == containerID })
	if ep != nil {
		eps = append(eps, cloneEndpoints([]*Endpoint{ep})[0])
		slices.SortFunc(eps, func(a, b *Endpoint) int { return a.IP.Compare(b.IP) })
	}
	c.lists[dir] = cachedList{gen: after, eps: eps}
}

// cloneEndpoints copies eps deeply enough for a caller to change them.
func cloneEndpoints(eps []*Endpoint) []*Endpoint {
	out := make([]*Endpoint, len(eps))
	for i, ep := range eps {
		e := *ep
		e.Aliases, e.Ports, e.DNS = slices.Clone(e.Aliases), slices.Clone(e.Ports), slices.Clone(e.DNS)
		out[i] = &e
	}
	return out
}

// get returns a copy of the record at path if the file is the one cached.
func (c *EndpointCache) get(path string, st *unix.Stat_t) (*Endpoint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ce, ok := c.m[path]
	if !ok || ce.ino != st.Ino || ce.size != st.Size || ce.ctime != st.Ctim {
		return nil, false
	}
	e := ce.ep
	e.Aliases, e.Ports, e.DNS = slices.Clone(e.Aliases), slices.Clone(e.Ports), slices.Clone(e.DNS)
	return &e, true
}

func (c *EndpointCache) put(path string, st *unix.Stat_t, e *Endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ce := cachedEndpoint{ino: st.Ino, size: st.Size, ctime: st.Ctim, ep: *e}
	ce.ep.Aliases, ce.ep.Ports, ce.ep.DNS = slices.Clone(e.Aliases), slices.Clone(e.Ports), slices.Clone(e.DNS)
	c.m[path] = ce
}

// forgetGone drops the cached records of dir whose files are gone.
func (c *EndpointCache) forgetGone(dir string, present map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.m {
		if filepath.Dir(p) == dir && !present[p] {
			delete(c.m, p)
		}
	}
}

func (c *EndpointCache) read(dir string) ([]*Endpoint, error) {
	var gen string
	if c != nil {
		if gen = generation(dir); gen != "" {
			c.mu.Lock()
			l, ok := c.lists[dir]
			c.mu.Unlock()
			if ok && l.gen == gen {
				return cloneEndpoints(l.eps), nil
			}
		}
	}
	eps, err := c.readDir(dir)
	if err == nil && c != nil {
		c.mu.Lock()
		if gen != "" {
			c.lists[dir] = cachedList{gen: gen, eps: cloneEndpoints(eps)}
		} else {
			delete(c.lists, dir)
		}
		c.mu.Unlock()
	}
	return eps, err
}

// readDir reads every record of dir, through the cache of records.
func (c *EndpointCache) readDir(dir string) ([]*Endpoint, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read endpoints: %w", err)
	}
	var out []*Endpoint
	var present map[string]bool
	if c != nil {
		present = map[string]bool{}
		defer c.forgetGone(dir, present)
	}
	for _, de := range ents {
		if !strings.HasSuffix(de.Name(), ".json") || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, de.Name())
		var st unix.Stat_t
		if c != nil {
			present[p] = true
			if err := unix.Stat(p, &st); err == nil {
				if e, ok := c.get(p, &st); ok {
					out = append(out, e)
					continue
				}
			}
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read endpoints: %w", err)
		}
		// The file read is the one stat'ed for the cache.
		if c != nil {
			err = unix.Fstat(int(f.Fd()), &st)
		}
		var b []byte
		if err == nil {
			b, err = io.ReadAll(f)
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read endpoints: %w", err)
		}
		var e Endpoint
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, errdefs.DataCorrupt("endpoint %s: %v", de.Name(), err)
		}
		if c != nil {
			c.put(p, &st, &e)
		}
		out = append(out, &e)
	}
	slices.SortFunc(out, func(a, b *Endpoint) int { return a.IP.Compare(b.IP) })
	return out, nil
}

func (m *Manager) writeEndpoint(e *Endpoint) error {
	dir := m.endpointDir(e.NetworkID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write endpoint: %w", err)
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	before := m.opts.Endpoints.current(dir)
	if err := writeFileNoSync(m.endpointFile(e.NetworkID, e.ContainerID), b, 0o600); err != nil {
		m.opts.Endpoints.forget(dir)
		return fmt.Errorf("write endpoint: %w", err)
	}
	bumpGeneration(dir)
	m.opts.Endpoints.changed(dir, before, e.ContainerID, e)
	// The hint spreads allocations: the next address starts after this one.
	writeHint(filepath.Join(m.stateDir(e.NetworkID), "last"), e.IP.String())
	return nil
}

// writeHint overwrites the start of a small file in place, padded to a
// fixed width, never truncating it: on ext4, truncating a file with data
// and writing it again makes close start its writeback (auto_da_alloc),
// ~1 ms on every Attach. A torn hint only fails to parse.
func writeHint(path, s string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteAt([]byte(fmt.Sprintf("%-39s\n", s)), 0)
}

func (m *Manager) lastIP(netID string) netip.Addr {
	b, _ := os.ReadFile(filepath.Join(m.stateDir(netID), "last"))
	a, _ := netip.ParseAddr(strings.TrimSpace(string(b)))
	return a
}

// Endpoints returns the containers attached to a network.
func (m *Manager) Endpoints(ctx context.Context, network string) ([]*Endpoint, error) {
	n, err := m.Get(ctx, network)
	if err != nil {
		return nil, err
	}
	return m.endpoints(n.ID)
}

// ContainerEndpoints returns a container's attachments, in the order they
// were made (by interface name).
func (m *Manager) ContainerEndpoints(ctx context.Context, containerID string) ([]*Endpoint, error) {
	nets, err := m.list()
	if err != nil {
		return nil, err
	}
	var out []*Endpoint
	for _, n := range nets {
		b, err := os.ReadFile(m.endpointFile(n.ID, containerID))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read endpoint: %w", err)
		}
		var e Endpoint
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, errdefs.DataCorrupt("endpoint of %s on %s: %v", containerID, n.Name, err)
		}
		out = append(out, &e)
	}
	slices.SortFunc(out, func(a, b *Endpoint) int { return strings.Compare(a.Interface, b.Interface) })
	return out, nil
}

// writeFileNoSync replaces path atomically (a temporary file renamed over
// it) without fsync. Endpoint records live under the run root, which does
// not survive a reboot, like the veths and rules they describe: they must
// survive a crash of berth, which the page cache guarantees, never one of
// the machine, so an fsync (about a millisecond on ext4, per attach) buys
// nothing.
func writeFileNoSync(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp-" + newID()[:16]
	if err := os.WriteFile(tmp, data, mode); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
