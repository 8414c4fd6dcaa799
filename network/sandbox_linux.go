package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A Sandbox is a network namespace made ahead of the container that will
// use it: lo up, and a veth pair whose end inside is eth0 (down, no
// address) and whose host end (down, on no bridge) has a random name. With
// a sandbox, Attach makes nothing: it puts the host end on the bridge and
// addresses the inside, through a netlink socket opened in the namespace
// when it was made (no thread enters the namespace on the start's path).
//
// A sandbox is held by its file descriptor alone until Mount binds it to a
// file: a sandbox never mounted dies with its process, its veth pair with
// it (the kernel deletes a veth pair with either end's namespace), however
// the process ends. Nothing of an unused sandbox can leak.
type Sandbox struct {
	ns        netns.NsHandle
	inside    *netlink.Handle // route netlink, in the namespace
	hostVeth  string
	hostIndex int
	peerIndex int
}

// ErrSandbox is the class of Attach's errors that came from configuring
// its request's sandbox (one the kernel no longer matches: its veth
// deleted by hand, say). The namespace made for the container is not to
// blame, and Attach undid everything: the caller may try again without a
// sandbox.
var ErrSandbox = errors.New("sandbox")

// NewSandbox makes a sandbox.
func NewSandbox() (*Sandbox, error) {
	s, err := newSandboxNetns()
	if err != nil {
		return nil, err
	}
	var b [7]byte
	rand.Read(b[:])
	s.hostVeth = "vb" + hex.EncodeToString(b[:])[:13]
	veth := &netlink.Veth{
		LinkAttrs:     hostEndAttrs(s.hostVeth),
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(s.ns),
	}
	h := hostLinks()
	if err := h.LinkAdd(veth); err != nil {
		s.Close()
		return nil, fmt.Errorf("sandbox: create veth %s: %w", s.hostVeth, err)
	}
	l, err := h.LinkByName(s.hostVeth)
	if err != nil {
		s.Close() // the pair goes with the namespace
		return nil, fmt.Errorf("sandbox: veth %s: %w", s.hostVeth, err)
	}
	s.hostIndex, s.peerIndex = l.Attrs().Index, l.Attrs().ParentIndex
	if s.peerIndex == 0 {
		s.Close()
		return nil, errors.New("sandbox: the kernel did not say which link is the veth's peer")
	}
	if err := noLinkLocal(s.hostVeth, s.inside, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: s.peerIndex}}); err != nil {
		s.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return s, nil
}

// hostEndAttrs are the attributes of a veth's host end named name: one
// queue each way and the kernel's default queue length, as podman's
// netavark gives it (the kernel's default, a queue per CPU, measured ~3%
// less through a published port on the 2-CPU bench machine).
func hostEndAttrs(name string) netlink.LinkAttrs {
	return netlink.LinkAttrs{Name: name, TxQLen: -1, NumTxQueues: 1, NumRxQueues: 1}
}

// noLinkLocal gives a veth pair, its host end by name (through the host's
// sysctl: no lookup of its index) and its other end through inside (a
// handle in its namespace), no IPv6 link-local address: berth's networks
// are IPv4 only, and as Docker does for those, the pair does no IPv6 (no
// duplicate address detection, router solicitation or MLD reports as it
// comes up).
func noLinkLocal(hostEnd string, inside *netlink.Handle, peer netlink.Link) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+hostEnd+"/addr_gen_mode", []byte("1"), 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no IPv6 in this kernel
	} else if err != nil {
		return fmt.Errorf("veth %s: no IPv6 link-local address: %w", hostEnd, err)
	}
	if err := inside.LinkSetIP6AddrGenMode(peer, ip6AddrGenModeNone); err != nil {
		return fmt.Errorf("veth %s's peer: no IPv6 link-local address: %w", hostEnd, err)
	}
	return nil
}

// ip6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE of the kernel's if_link.h.
const ip6AddrGenModeNone = 1

// newSandboxNetns makes the namespace and its netlink handle, and sets lo
// up, on a thread locked to the goroutine, which goes back to the
// process's namespace before it is unlocked. (A thread left in the
// namespace to die with its goroutine would not always die: the Go
// runtime cannot end the main thread, and parks it for good instead,
// namespace and all.)
func newSandboxNetns() (*Sandbox, error) {
	type result struct {
		s   *Sandbox
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: fmt.Errorf("sandbox: open the process's namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			c <- result{err: fmt.Errorf("sandbox: %w", os.NewSyscallError("unshare(CLONE_NEWNET)", err))}
			return
		}
		s, err := openSandbox()
		if serr := netns.Set(orig); serr != nil {
			// The thread stays locked: it ends with the goroutine.
			if s != nil {
				s.Close()
			}
			c <- result{err: fmt.Errorf("sandbox: back to the process's namespace: %w", serr)}
			return
		}
		runtime.UnlockOSThread()
		c <- result{s: s, err: err}
	}()
	r := <-c
	return r.s, r.err
}

// openSandbox opens the current thread's namespace, a netlink handle in it,
// and sets lo up.
func openSandbox() (*Sandbox, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("sandbox: open namespace: %w", err)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // its socket is the namespace's
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("sandbox: netlink: %w", err)
	}
	// lo is the first interface of every network namespace.
	if err := h.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}); err != nil {
		h.Close()
		ns.Close()
		return nil, fmt.Errorf("sandbox: set lo up: %w", err)
	}
	return &Sandbox{ns: ns, inside: h}, nil
}

// HostVeth is the name of the sandbox's host end.
func (s *Sandbox) HostVeth() string { return s.hostVeth }

// Mount binds the sandbox's namespace to path (created if missing), so
// that it outlives the process: a runtime joins it there, and the records
// name it.
func (s *Sandbox) Mount(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	f.Close()
	src := fmt.Sprintf("/proc/self/fd/%d", int(s.ns))
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("sandbox: %w", os.NewSyscallError("mount", err))
	}
	return nil
}

// Close closes the sandbox's descriptors: an unmounted sandbox dies, a
// mounted one lives on in its file. Idempotent.
func (s *Sandbox) Close() {
	if s.inside != nil {
		s.inside.Close()
		s.inside = nil
	}
	if s.ns.IsOpen() {
		s.ns.Close()
	}
}

// configure puts the host end on the bridge, up, and gives the inside its
// MAC, MTU, address and default route, as setup does for a veth it makes.
func (s *Sandbox) configure(n *Network, ep *Endpoint, br netlink.Link) error {
	if s.inside == nil {
		return errors.New("sandbox already closed")
	}
	h := hostLinks()
	host := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: s.hostIndex, Name: s.hostVeth}}
	mtu := br.Attrs().MTU
	if mtu > 0 && mtu != 1500 {
		if err := h.LinkSetMTU(host, mtu); err != nil {
			return fmt.Errorf("veth %s: set MTU: %w", s.hostVeth, err)
		}
	}
	if err := h.LinkSetMasterByIndex(host, br.Attrs().Index); err != nil {
		return fmt.Errorf("veth %s: put on bridge %s: %w", s.hostVeth, n.Bridge, err)
	}
	if err := h.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s: set up: %w", s.hostVeth, err)
	}
	in := s.inside
	eth := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: s.peerIndex, Name: ep.Interface}}
	if mtu > 0 && mtu != 1500 {
		if err := in.LinkSetMTU(eth, mtu); err != nil {
			return fmt.Errorf("set %s MTU: %w", ep.Interface, err)
		}
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return fmt.Errorf("MAC %q: %w", ep.MAC, err)
	}
	if err := in.LinkSetHardwareAddr(eth, mac); err != nil {
		return fmt.Errorf("set %s MAC: %w", ep.Interface, err)
	}
	return addressInside(in, n, ep, eth)
}

// SandboxPool keeps sandboxes ready for the starts to come. Its sandboxes
// are the process's own (see Sandbox): when the process exits, however it
// exits, the kernel deletes them.
type SandboxPool struct {
	size  int
	delay time.Duration

	mu      sync.Mutex
	ready   []*Sandbox
	used    bool        // Take was called
	timer   *time.Timer // a fill scheduled, not started, at due
	due     time.Time
	filling bool // a fill under way
}

// NewSandboxPool returns a pool that keeps up to size sandboxes ready. It
// makes none until first asked.
func NewSandboxPool(size int, delay time.Duration) *SandboxPool {
	return &SandboxPool{size: max(size, 1), delay: delay}
}

// SandboxDelay is how long after a start took a sandbox a container
// monitor's pool makes the next, unless a container's exit (Refill) says so
// sooner: after that start, not during it (on a 2-CPU machine, making one
// while a start ran cost the start more than the sandbox saved it).
// RefillDelay is how long after a container's exit: after the exit is
// handled and its client told, and before a client that starts another
// container right after (a script's next `run`) reaches the monitor.
const (
	SandboxDelay = 100 * time.Millisecond
	RefillDelay  = 5 * time.Millisecond
)

// Take returns a ready sandbox, or nil if none is, and has the pool
// filled again in the background: after the pool's delay if it had one
// (the caller's start is under way), at once if not.
func (p *SandboxPool) Take() *Sandbox {
	p.mu.Lock()
	p.used = true
	var s *Sandbox
	if n := len(p.ready); n > 0 {
		s, p.ready = p.ready[n-1], p.ready[:n-1]
	}
	p.mu.Unlock()
	if s == nil {
		p.fill(0)
	} else {
		p.fill(p.delay)
	}
	return s
}

// Refill has a pool that Take was called on filled after delay, bringing
// a fill scheduled later forward.
func (p *SandboxPool) Refill(delay time.Duration) {
	p.mu.Lock()
	used := p.used
	p.mu.Unlock()
	if used {
		p.fill(delay)
	}
}

// Close closes the sandboxes ready now (they die: they were never
// mounted). A fill under way may still add one.
func (p *SandboxPool) Close() {
	p.mu.Lock()
	ready := p.ready
	p.ready = nil
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	for _, s := range ready {
		s.Close()
	}
}

// fill schedules the pool's filling after delay, or brings a fill
// scheduled later forward to then; one fill runs at a time.
func (p *SandboxPool) fill(delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.filling || len(p.ready) >= p.size {
		return
	}
	due := time.Now().Add(delay)
	if p.timer != nil {
		if due.Before(p.due) {
			// A second run, if the first began meanwhile, finds the
			// pool filling or full.
			p.timer.Reset(delay)
			p.due = due
		}
		return
	}
	p.timer, p.due = time.AfterFunc(delay, p.run), due
}

// run makes sandboxes until the pool is full. A failure stops it until the
// next Take.
func (p *SandboxPool) run() {
	p.mu.Lock()
	p.timer = nil
	if p.filling || len(p.ready) >= p.size {
		p.mu.Unlock()
		return
	}
	p.filling = true
	p.mu.Unlock()
	for {
		s, err := NewSandbox()
		p.mu.Lock()
		if err != nil || len(p.ready) >= p.size {
			p.filling = false
			p.mu.Unlock()
			if s != nil {
				s.Close()
			}
			return
		}
		p.ready = append(p.ready, s)
		full := len(p.ready) >= p.size
		if full {
			p.filling = false
		}
		p.mu.Unlock()
		if full {
			return
		}
	}
}
