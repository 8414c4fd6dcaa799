package network

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/network/nft"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// env is one test's berth: private roots, a default bridge and subnet of
// its own (so that tests, and other berth roots on the host, never share
// berth0 or its addresses), and the busybox image.
type env struct {
	t      *testing.T
	b      *testutil.Berth
	bridge string       // the default network's bridge
	subnet netip.Prefix // the default network's subnet
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: containers and their networks are real")
	}
	b := testutil.NewBerth(t)
	e := &env{t: t, b: b, bridge: "bt" + randHex(4), subnet: freeSubnet(t)}
	b.Env = append(b.Env, "BERTH_BRIDGE="+e.bridge, "BERTH_BRIDGE_SUBNET="+e.subnet.String())
	b.MustRun("import", "-c", `CMD ["sh"]`, testutil.Images(t).Busybox, "busybox")
	// Registered after NewBerth's cleanup, so it runs first: containers go
	// before the roots are unmounted and removed.
	t.Cleanup(e.cleanup)
	return e
}

// cleanup removes every container and user network of the test, then
// checks that no bridge of a user network is left. The default network's
// bridge stays by design (as docker0 does): the test deletes it, and the
// network's rules, itself.
func (e *env) cleanup() {
	t := e.t
	if ids := strings.Fields(e.b.Run("ps", "-aq").Stdout); len(ids) > 0 {
		if res := e.b.Run(append([]string{"rm", "-f"}, ids...)...); res.Code != 0 {
			t.Errorf("cleanup: rm -f: %s", res)
		}
	}
	var bridges []string
	for _, id := range strings.Fields(e.b.Run("network", "ls", "-q", "--no-trunc", "--filter", "type=custom").Stdout) {
		bridges = append(bridges, "br-"+id[:12])
	}
	if res := e.b.Run("network", "prune", "-f"); res.Code != 0 {
		t.Errorf("cleanup: network prune: %s", res)
	}
	for _, br := range bridges {
		if linkExists(br) {
			t.Errorf("cleanup: bridge %s is left after every container and network is removed", br)
			exec.Command("ip", "link", "del", br).Run()
		}
	}
	if linkExists(e.bridge) {
		id := strings.TrimSpace(e.b.Run("network", "inspect", "-f", "{{.Id}}", "bridge").Stdout)
		exec.Command("ip", "link", "del", e.bridge).Run()
		if len(id) >= 12 {
			if err := nft.New("berth").Delete("net:" + id[:12]); err != nil {
				t.Errorf("cleanup: rules of the default network: %v", err)
			}
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var subnets struct {
	mu    sync.Mutex
	given map[netip.Prefix]bool
}

// freeSubnet returns a random /24 of 10.200.0.0/13 that no route of the
// host overlaps and that no other test of this process was given.
func freeSubnet(t *testing.T) netip.Prefix {
	t.Helper()
	out, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	var routes []netip.Prefix
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unicast" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			routes = append(routes, p)
		}
	}
	subnets.mu.Lock()
	defer subnets.mu.Unlock()
	if subnets.given == nil {
		subnets.given = map[netip.Prefix]bool{}
	}
	for range 1000 {
		n, _ := rand.Int(rand.Reader, big.NewInt(8*256))
		x := n.Int64()
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + x/256), byte(x % 256), 0}), 24)
		free := !subnets.given[p]
		for _, r := range routes {
			free = free && !r.Overlaps(p)
		}
		if free {
			subnets.given[p] = true
			return p
		}
	}
	t.Fatal("no free /24 in 10.200.0.0/13")
	return netip.Prefix{}
}

// addr returns the subnet's address with the last byte set to host.
func addr(p netip.Prefix, host byte) netip.Addr {
	a := p.Addr().As4()
	a[3] = host
	return netip.AddrFrom4(a)
}

// freePort returns a TCP or UDP port of 127.0.0.1 that nothing holds now.
func freePort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// httpGet fetches url (on 127.0.0.1) until it answers 200, a bounded
// number of times: the server in the container may not listen yet.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for range 50 {
		resp, err := client.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("status %s, body %q, read: %v", resp.Status, b, rerr)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

// webCmd is a busybox command that serves the container's /etc over HTTP
// on port: GET /hostname answers its host name.
func webCmd(port int) []string {
	return []string{"httpd", "-f", "-p", fmt.Sprint(port), "-h", "/etc"}
}

// fetchIn is a shell script for a container that fetches url with wget,
// retrying a bounded number of times, and prints the body.
func fetchIn(url string) string {
	return fmt.Sprintf(`for i in $(seq 30); do timeout 3 wget -q -O - %s && exit 0; sleep 0.2; done; exit 1`, url)
}

// inspected is the part of `inspect` the tests read.
type inspected struct {
	ID     string `json:"Id"`
	Config struct {
		Hostname string
	}
	State struct {
		Running bool
		Pid     int
	}
	NetworkSettings struct {
		SandboxKey string
		IPAddress  string
		MacAddress string
		Ports      map[string][]struct{ HostIP, HostPort string }
		Networks   map[string]*struct {
			NetworkID  string
			EndpointID string
			IPAddress  string
			MacAddress string
			Gateway    string
			Aliases    []string
		}
	}
}

func (e *env) inspect(refs ...string) []inspected {
	e.t.Helper()
	res := e.b.MustRun(append([]string{"inspect", "--type", "container"}, refs...)...)
	var out []inspected
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		e.t.Fatalf("inspect %v: %v\n%s", refs, err, res.Stdout)
	}
	if len(out) != len(refs) {
		e.t.Fatalf("inspect %v: %d results", refs, len(out))
	}
	return out
}

// endpoint is a container's endpoint record on a network, as the network
// package writes it under the run root.
type endpoint struct {
	ContainerID string `json:"containerID"`
	HostVeth    string `json:"hostVeth"`
	IP          string `json:"ip"`
}

func (e *env) endpointFile(netID, ctrID string) string {
	return filepath.Join(e.b.RunRoot, "network", netID, "endpoints", ctrID+".json")
}

// trace is what a container attached to a network has on the host: its
// endpoint record (its address allocation), its host veth and its
// nftables rules.
type trace struct {
	ctrID, netID, veth string
}

// traceOf reads the traces of a running container on each of its networks
// and checks they exist, so that their absence later means something.
func (e *env) traceOf(ref string, wantRules bool) []trace {
	e.t.Helper()
	c := e.inspect(ref)[0]
	var out []trace
	for name, n := range c.NetworkSettings.Networks {
		if n.NetworkID == "" {
			continue
		}
		b, err := os.ReadFile(e.endpointFile(n.NetworkID, c.ID))
		if err != nil {
			e.t.Fatalf("%s on %s: endpoint record: %v", ref, name, err)
		}
		var ep endpoint
		if err := json.Unmarshal(b, &ep); err != nil {
			e.t.Fatalf("%s on %s: endpoint record: %v", ref, name, err)
		}
		if !linkExists(ep.HostVeth) {
			e.t.Fatalf("%s on %s: host veth %s does not exist while it runs", ref, name, ep.HostVeth)
		}
		out = append(out, trace{ctrID: c.ID, netID: n.NetworkID, veth: ep.HostVeth})
	}
	if len(out) == 0 {
		e.t.Fatalf("%s is attached to no network", ref)
	}
	if wantRules && !strings.Contains(nftTable(e.t), "ctr:"+c.ID) {
		e.t.Fatalf("%s publishes ports but has no rule in table ip berth:\n%s", ref, nftTable(e.t))
	}
	return out
}

// checkGone fails unless every trace is gone from the host.
func (e *env) checkGone(traces []trace) {
	e.t.Helper()
	table := nftTable(e.t)
	for _, tr := range traces {
		if _, err := os.Stat(e.endpointFile(tr.netID, tr.ctrID)); !os.IsNotExist(err) {
			e.t.Errorf("container %.12s: its endpoint record (address allocation) on %.12s is left (stat: %v)", tr.ctrID, tr.netID, err)
		}
		if !waitLinkGone(tr.veth) {
			e.t.Errorf("container %.12s: its veth %s is left", tr.ctrID, tr.veth)
		}
		if strings.Contains(table, "ctr:"+tr.ctrID) {
			e.t.Errorf("container %.12s: rules left in table ip berth:\n%s", tr.ctrID, table)
		}
	}
}

// waitLinkGone waits, a bounded time, for a link to go: berth leaves an
// exited container's veth pair to the kernel, which deletes it with the
// container's network namespace, asynchronously (cleanup_net, in a work
// queue), which on a loaded 2-CPU machine running other test packages'
// namespaces too has been seen to take more than 5 s. A bound against
// hangs, not a threshold.
func waitLinkGone(name string) bool {
	for range 3000 {
		if !linkExists(name) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// nftTable lists berth's nftables table ("" if it does not exist).
func nftTable(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", "berth").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		t.Fatalf("nft list table ip berth: %v\n%s", err, out)
	}
	return string(out)
}

// mustFail runs berth with args and checks it fails with exit code 125 and
// an error mentioning want.
func (e *env) mustFail(want string, args ...string) testutil.Result {
	e.t.Helper()
	res := e.b.Run(args...)
	if res.Code != 125 || !strings.Contains(res.Stderr, want) {
		e.t.Errorf("berth %s: want exit code 125 and an error with %q, got %s", strings.Join(args, " "), want, res)
	}
	return res
}

func (e *env) containerIDs() []string {
	e.t.Helper()
	return strings.Fields(e.b.MustRun("ps", "-aq", "--no-trunc").Stdout)
}
