// Package nft owns berth's nftables table: the NAT and filter rules that
// give containers outbound access (masquerade), publish their ports (DNAT
// in prerouting and output) and keep internal networks shut. Every rule
// carries an owner tag in its comment ("net:<id>" or "ctr:<id>") so that a
// network's or a container's rules are removed, and only those, when it
// goes away. The table is berth's own, created on first use; berth never
// touches another table.
//
// The layout of table ip <name>:
//
//	chain prerouting  (nat, prerouting, -100): fib daddr type local jump publish
//	chain output      (nat, output, -100):     fib daddr type local jump publish
//	chain publish:    one DNAT rule per published port
//	chain postrouting (nat, postrouting, 100): masquerade rules per network
//	chain forward     (filter, forward, 0):    isolation of internal networks
package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Firewall is one nftables table of berth's. Each call does its work in
// one transaction over the process's one netlink connection (see conn).
// Callers serialise changes between processes (the network package's
// lock).
type Firewall struct {
	table *nftables.Table
}

// conn is the process's nftables connection, opened on first use and kept
// open. Closing a netfilter netlink socket makes the kernel finish freeing
// the objects of the last transaction first (nft_rcv_nl_event flushes the
// destroy work, which waits for an RCU grace period): a socket per call cost
// ~9 ms on every close after a change, twice per container exit. A
// long-lived process (the monitor) now never pays it; a short one pays it
// once, at exit.
var conn struct {
	mu sync.Mutex // held for a whole call: the Conn queues one batch
	c  *nftables.Conn
}

// do runs fn with the process's connection. An error drops the connection
// (it may hold half a batch or a sticky error); the next call opens another.
func do(fn func(c *nftables.Conn) error) error {
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.c == nil {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		conn.c = c
	}
	err := fn(conn.c)
	if err != nil {
		conn.c.CloseLasting()
		conn.c = nil
	}
	return err
}

// New returns the firewall of the table named name in the ip family.
func New(name string) *Firewall {
	return &Firewall{table: &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}}
}

// Table is the table's name.
func (f *Firewall) Table() string { return f.table.Name }

const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPublish     = "publish"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
)

func (f *Firewall) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: f.table}
}

// Ensure creates the table and its chains if they do not exist yet.
func (f *Firewall) Ensure() error {
	return do(f.ensure)
}

func (f *Firewall) ensure(c *nftables.Conn) error {
	if _, err := c.ListTableOfFamily(f.table.Name, f.table.Family); err == nil {
		return nil
	}
	accept := nftables.ChainPolicyAccept
	c.AddTable(f.table)
	pub := c.AddChain(f.chain(chainPublish))
	for _, ch := range []*nftables.Chain{
		{Name: chainPrerouting, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest},
		{Name: chainOutput, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest},
	} {
		ch.Table = f.table
		c.AddChain(ch)
		c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: pub.Name},
		}})
	}
	c.AddChain(&nftables.Chain{Name: chainPostrouting, Table: f.table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddChain(&nftables.Chain{Name: chainForward, Table: f.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: create table %s: %w", f.table.Name, err)
	}
	return nil
}

// Destroy deletes the whole table, if it exists.
func (f *Firewall) Destroy() error {
	return do(func(c *nftables.Conn) error {
		if _, err := c.ListTableOfFamily(f.table.Name, f.table.Family); err != nil {
			return nil
		}
		c.DelTable(f.table)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: delete table %s: %w", f.table.Name, err)
		}
		return nil
	})
}

// Network describes the rules one bridge network needs.
type Network struct {
	Owner    string       // tag, e.g. "net:<id>"
	Bridge   string       // bridge interface name
	Subnet   netip.Prefix // the network's subnet
	Internal bool         // no traffic in or out of the bridge
}

// AddNetwork adds the network's rules: for a network with outside access,
// masquerade of its traffic leaving by another interface, of traffic from
// 127.0.0.0/8 that a published port sent to it (route_localnet) and of
// traffic from its own containers that a published port turned back to it
// (hairpin); for an internal network, drops of everything crossing its
// bridge. Callers remove the owner's old rules first.
func (f *Firewall) AddNetwork(n Network) error {
	return do(func(c *nftables.Conn) error { return f.addNetwork(c, n) })
}

func (f *Firewall) addNetwork(c *nftables.Conn, n Network) error {
	post, fwd := f.chain(chainPostrouting), f.chain(chainForward)
	add := func(ch *nftables.Chain, exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: exprs, UserData: tag(n.Owner)})
	}
	if n.Internal {
		add(fwd, append(ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, n.Bridge),
			append(ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, n.Bridge), &expr.Verdict{Kind: expr.VerdictDrop})...)...)
		add(fwd, append(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge),
			append(ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, n.Bridge), &expr.Verdict{Kind: expr.VerdictDrop})...)...)
	} else {
		add(post, concat(saddrIn(n.Subnet), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, n.Bridge), []expr.Any{&expr.Masq{}})...)
	}
	add(post, concat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge),
		saddrIn(netip.MustParsePrefix("127.0.0.0/8")), []expr.Any{&expr.Masq{}})...)
	add(post, concat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge), saddrIn(n.Subnet), ctDNAT(), []expr.Any{&expr.Masq{}})...)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: add rules of %s: %w", n.Bridge, err)
	}
	return nil
}

// Port is one published port: traffic to HostIP (any local address when
// invalid) on HostPort goes to ContainerIP on ContainerPort.
type Port struct {
	Proto         string // "tcp" or "udp"
	HostIP        netip.Addr
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

// AddPorts adds a DNAT rule for each port, tagged with owner, in one
// transaction.
func (f *Firewall) AddPorts(owner string, ports []Port) error {
	if len(ports) == 0 {
		return nil
	}
	return do(func(c *nftables.Conn) error { return f.addPorts(c, owner, ports) })
}

func (f *Firewall) addPorts(c *nftables.Conn, owner string, ports []Port) error {
	pub := f.chain(chainPublish)
	for _, p := range ports {
		var ex []expr.Any
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			ex = append(ex,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.HostIP.AsSlice()})
		}
		proto := byte(unix.IPPROTO_TCP)
		if p.Proto == "udp" {
			proto = unix.IPPROTO_UDP
		}
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.HostPort)},
			&expr.Immediate{Register: 1, Data: p.ContainerIP.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		)
		c.AddRule(&nftables.Rule{Table: f.table, Chain: pub, Exprs: ex, UserData: tag(owner)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: publish ports: %w", err)
	}
	return nil
}

// Delete removes every rule tagged with owner from every chain of the
// table, in one transaction. A missing table has no rules to remove.
func (f *Firewall) Delete(owner string) error {
	return do(func(c *nftables.Conn) error {
		return f.delete(c, owner, chainPublish, chainPostrouting, chainForward)
	})
}

// DeletePorts removes the rules AddPorts added for owner: one dump of the
// publish chain and one transaction, nothing else.
func (f *Firewall) DeletePorts(owner string) error {
	return do(func(c *nftables.Conn) error { return f.delete(c, owner, chainPublish) })
}

func (f *Firewall) delete(c *nftables.Conn, owner string, chains ...string) error {
	rules, err := f.owned(c, owner, chains...)
	if err != nil || len(rules) == 0 {
		return err
	}
	for _, r := range rules {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("nftables: delete rule: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: delete rules of %s: %w", owner, err)
	}
	return nil
}

// Count returns how many rules are tagged with owner (for leak checks).
func (f *Firewall) Count(owner string) (int, error) {
	var n int
	err := do(func(c *nftables.Conn) error {
		rules, err := f.owned(c, owner, chainPublish, chainPostrouting, chainForward)
		n = len(rules)
		return err
	})
	return n, err
}

// owned lists the rules of the chains tagged with owner. A missing table or
// chain has none (ENOENT: no table is looked up first, to save a dump).
func (f *Firewall) owned(c *nftables.Conn, owner string, chains ...string) ([]*nftables.Rule, error) {
	want := commentOf(owner)
	var out []*nftables.Rule
	for _, name := range chains {
		rules, err := c.GetRules(f.table, f.chain(name))
		if errors.Is(err, unix.ENOENT) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("nftables: list chain %s: %w", name, err)
		}
		for _, r := range rules {
			if s, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && strings.TrimRight(s, "\x00") == want {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func commentOf(owner string) string { return "berth " + owner }

// tag is an nftables comment, so that `nft list` shows whose a rule is.
func tag(owner string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, commentOf(owner))
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

func saddrIn(p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// ctDNAT matches connections whose destination was translated.
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ipsDstNAT is IPS_DST_NAT of the kernel's enum ip_conntrack_status.
const ipsDstNAT = 1 << 5
