package network

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// ServeDNSMain is the body of the resolver process of one network (see
// Options.DNSServer): args is the network's state directory. It answers
// until SIGTERM or until the directory is removed, and tells the process
// that started it, through file descriptor 3, once it listens ("ok") or
// why it could not.
func ServeDNSMain(ctx context.Context, args []string) error {
	ready := os.NewFile(3, "ready")
	fail := func(err error) error {
		if ready != nil {
			fmt.Fprintf(ready, "%v\n", err)
			ready.Close()
		}
		return err
	}
	if len(args) != 1 {
		return fail(errors.New("usage: dns-serve STATE-DIR"))
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s, err := NewDNSServer(args[0])
	if err != nil {
		return fail(err)
	}
	if ready != nil {
		fmt.Fprint(ready, "ok\n")
		ready.Close()
	}
	return s.Serve(ctx)
}

// DNSServer answers the names of one network's containers, and forwards
// other queries to the querying container's --dns servers or the host's.
type DNSServer struct {
	dir  string
	cfg  dnsConfig
	udp  net.PacketConn
	tcp  net.Listener
	fwdT time.Duration

	mu      sync.Mutex // guards the fields below
	mtime   time.Time
	records []*Endpoint
}

// NewDNSServer reads the configuration in a network's state directory and
// binds its sockets.
func NewDNSServer(dir string) (*DNSServer, error) {
	b, err := os.ReadFile(filepath.Join(dir, dnsConfigFile))
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	s := &DNSServer{dir: dir, fwdT: 2 * time.Second}
	if err := json.Unmarshal(b, &s.cfg); err != nil {
		return nil, fmt.Errorf("resolver: %s: %w", dnsConfigFile, err)
	}
	addr := netip.AddrPortFrom(s.cfg.Listen, uint16(s.cfg.Port)).String()
	if s.udp, err = net.ListenPacket("udp4", addr); err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	if s.tcp, err = net.Listen("tcp4", addr); err != nil {
		s.udp.Close()
		return nil, fmt.Errorf("resolver: %w", err)
	}
	return s, nil
}

// Serve answers until ctx ends or the state directory disappears.
func (s *DNSServer) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		s.udp.Close()
		s.tcp.Close()
	}()
	go s.serveTCP(ctx)
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("resolver: %w", err)
		}
		if _, err := os.Stat(s.dir); err != nil {
			return nil // the network is gone
		}
		q := append([]byte(nil), buf[:n]...)
		go func() {
			if resp := s.answer(ctx, q, addrOf(from)); resp != nil {
				s.udp.WriteTo(resp, from)
			}
		}()
	}
}

func (s *DNSServer) serveTCP(ctx context.Context) {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var l [2]byte
			for {
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				resp := s.answer(ctx, q, addrOf(c.RemoteAddr()))
				if resp == nil {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				if _, err := c.Write(append(out, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

func addrOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// load rereads the endpoint records when their directory changed.
func (s *DNSServer) load() []*Endpoint {
	dir := filepath.Join(s.dir, "endpoints")
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(dir)
	if err != nil {
		s.records = nil
		return nil
	}
	// Directory times are coarse: a change within the same tick as the
	// last read keeps the time, so a recent time is always reread.
	if fi.ModTime().Equal(s.mtime) && s.records != nil && time.Since(s.mtime) > time.Second {
		return s.records
	}
	eps, err := readEndpoints(dir)
	if err != nil {
		return s.records // keep the last good view
	}
	s.records, s.mtime = eps, fi.ModTime()
	return eps
}

// lookup returns the addresses of a container name, alias, or ID prefix.
func lookup(eps []*Endpoint, name string) []netip.Addr {
	var out []netip.Addr
	for _, e := range eps {
		match := strings.EqualFold(e.Name, name) ||
			len(name) >= 12 && strings.HasPrefix(e.ContainerID, strings.ToLower(name))
		for _, a := range e.Aliases {
			match = match || strings.EqualFold(a, name)
		}
		if match {
			out = append(out, e.IP)
		}
	}
	return out
}

const dnsTTL = 60

// answer builds the response to one query from a container at from; nil
// drops it.
func (s *DNSServer) answer(ctx context.Context, query []byte, from netip.Addr) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	eps := s.load()
	name := strings.TrimSuffix(q.Name.String(), ".")
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	reply := func(rcode dnsmessage.RCode, build func(*dnsmessage.Builder) error) []byte {
		rh.RCode = rcode
		b := dnsmessage.NewBuilder(nil, rh)
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if build != nil {
			if err := build(&b); err != nil {
				return nil
			}
		}
		out, err := b.Finish()
		if err != nil {
			return nil
		}
		return out
	}
	if q.Class == dnsmessage.ClassINET {
		if addrs := lookup(eps, name); len(addrs) > 0 {
			return reply(dnsmessage.RCodeSuccess, func(b *dnsmessage.Builder) error {
				if q.Type != dnsmessage.TypeA && q.Type != dnsmessage.TypeALL {
					return nil // no IPv6: an empty answer, so clients move on
				}
				for _, a := range addrs {
					rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
					if err := b.AResource(rr, dnsmessage.AResource{A: a.As4()}); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if q.Type == dnsmessage.TypePTR {
			if target := ptrTarget(eps, name); target != "" {
				return reply(dnsmessage.RCodeSuccess, func(b *dnsmessage.Builder) error {
					rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}
					return b.PTRResource(rr, dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(target + ".")})
				})
			}
		}
	}
	if s.cfg.Internal || !strings.Contains(name, ".") && !strings.HasSuffix(name, "arpa") {
		// A single-label name that no container has: no one else knows it.
		return reply(dnsmessage.RCodeNameError, nil)
	}
	if resp := s.forward(ctx, query, s.upstreams(eps, from)); resp != nil {
		return resp
	}
	return reply(dnsmessage.RCodeServerFailure, nil)
}

func ptrTarget(eps []*Endpoint, name string) string {
	rev, ok := strings.CutSuffix(strings.ToLower(name), ".in-addr.arpa")
	if !ok {
		return ""
	}
	f := strings.Split(rev, ".")
	if len(f) != 4 {
		return ""
	}
	a, err := netip.ParseAddr(f[3] + "." + f[2] + "." + f[1] + "." + f[0])
	if err != nil {
		return ""
	}
	for _, e := range eps {
		if e.IP == a && e.Name != "" {
			return e.Name
		}
	}
	return ""
}

// upstreams are the querying container's own --dns servers, or the host's.
func (s *DNSServer) upstreams(eps []*Endpoint, from netip.Addr) []string {
	for _, e := range eps {
		if e.IP == from && len(e.DNS) > 0 {
			var out []string
			for _, d := range e.DNS {
				if ap, err := netip.ParseAddrPort(d); err == nil {
					out = append(out, ap.String())
				} else if a, err := netip.ParseAddr(d); err == nil {
					out = append(out, netip.AddrPortFrom(a, 53).String())
				}
			}
			return out
		}
	}
	return s.cfg.Upstreams
}

// forward relays a query to each upstream in turn until one answers.
func (s *DNSServer) forward(ctx context.Context, query []byte, upstreams []string) []byte {
	for _, u := range upstreams {
		resp, err := exchange(ctx, u, query, s.fwdT)
		if err == nil {
			return resp
		}
	}
	return nil
}

func exchange(ctx context.Context, server string, query []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(query); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 2 && n <= len(buf) && buf[0] == query[0] && buf[1] == query[1] {
			return buf[:n], nil
		}
	}
}
