package nft

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func testFirewall(t *testing.T) *Firewall {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	var b [4]byte
	rand.Read(b[:])
	f := New("berth_test_" + hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		if err := f.Destroy(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func TestRulesByOwner(t *testing.T) {
	f := testFirewall(t)
	if err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(); err != nil { // idempotent
		t.Fatal(err)
	}
	n := Network{Owner: "net:a", Bridge: "br-test", Subnet: netip.MustParsePrefix("10.231.0.0/24")}
	if err := f.AddNetwork(n); err != nil {
		t.Fatal(err)
	}
	ports := []Port{
		{Proto: "tcp", HostPort: 18080, ContainerIP: netip.MustParseAddr("10.231.0.2"), ContainerPort: 80},
		{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 18053, ContainerIP: netip.MustParseAddr("10.231.0.2"), ContainerPort: 53},
	}
	if err := f.AddPorts("ctr:one", ports); err != nil {
		t.Fatal(err)
	}
	if err := f.AddPorts("ctr:two", ports[:1]); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nft", "list", "table", "ip", f.Table()).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	for _, want := range []string{
		"fib daddr type local jump publish",
		`tcp dport 18080 dnat to 10.231.0.2:80 comment "berth ctr:one"`,
		`ip daddr 127.0.0.1 udp dport 18053 dnat to 10.231.0.2:53`,
		`ip saddr 10.231.0.0/24 oifname != "br-test" masquerade`,
		`oifname "br-test" ip saddr 10.231.0.0/24 ct status dnat masquerade`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ruleset lacks %q:\n%s", want, out)
		}
	}
	for owner, want := range map[string]int{"ctr:one": 2, "ctr:two": 1, "net:a": 3} {
		if got, err := f.Count(owner); err != nil || got != want {
			t.Errorf("Count(%s) = %d, %v; want %d", owner, got, err, want)
		}
	}
	if err := f.Delete("ctr:one"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Count("ctr:one"); got != 0 {
		t.Errorf("after Delete, %d rules of ctr:one left", got)
	}
	if got, _ := f.Count("ctr:two"); got != 1 {
		t.Errorf("Delete removed another owner's rules: %d left", got)
	}
	if err := f.DeletePorts("ctr:two"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Count("ctr:two"); got != 0 {
		t.Errorf("after DeletePorts, %d rules of ctr:two left", got)
	}
	if got, _ := f.Count("net:a"); got != 3 {
		t.Errorf("DeletePorts removed a network's rules: %d left, want 3", got)
	}
}

func TestInternalNetwork(t *testing.T) {
	f := testFirewall(t)
	if err := f.Ensure(); err != nil {
		t.Fatal(err)
	}
	n := Network{Owner: "net:i", Bridge: "br-int", Subnet: netip.MustParsePrefix("10.232.0.0/24"), Internal: true}
	if err := f.AddNetwork(n); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("nft", "list", "chain", "ip", f.Table(), "forward").CombinedOutput()
	if !strings.Contains(string(out), `iifname "br-int" oifname != "br-int" drop`) {
		t.Errorf("no isolation rule:\n%s", out)
	}
	out, _ = exec.Command("nft", "list", "chain", "ip", f.Table(), "postrouting").CombinedOutput()
	if strings.Contains(string(out), "oifname != \"br-int\" masquerade") {
		t.Errorf("internal network masqueraded:\n%s", out)
	}
	if err := f.Delete("net:i"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Count("net:i"); got != 0 {
		t.Errorf("%d rules left", got)
	}
}

func TestMissingTable(t *testing.T) {
	f := testFirewall(t)
	if n, err := f.Count("ctr:x"); err != nil || n != 0 {
		t.Errorf("Count on a missing table = %d, %v; want 0, nil", n, err)
	}
	if err := f.DeletePorts("ctr:x"); err != nil {
		t.Errorf("DeletePorts on a missing table: %v", err)
	}
	if err := f.Delete("net:x"); err != nil {
		t.Errorf("Delete on a missing table: %v", err)
	}
}
