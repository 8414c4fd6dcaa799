package network

import (
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestParsePorts(t *testing.T) {
	for spec, want := range map[string][]string{
		"80":                      {"80/tcp -> 0.0.0.0:0"},
		"8080:80":                 {"80/tcp -> 0.0.0.0:8080"},
		"127.0.0.1:8080:80/udp":   {"80/udp -> 127.0.0.1:8080"},
		"127.0.0.1::80":           {"80/tcp -> 127.0.0.1:0"},
		"0.0.0.0:53:53/UDP":       {"53/udp -> 0.0.0.0:53"},
		"8000-8002:9000-9002/tcp": {"9000/tcp -> 0.0.0.0:8000", "9001/tcp -> 0.0.0.0:8001", "9002/tcp -> 0.0.0.0:8002"},
		"7000-7001":               {"7000/tcp -> 0.0.0.0:0", "7001/tcp -> 0.0.0.0:0"},
		"8000-8010:80":            {"80/tcp -> 0.0.0.0:8000-8010"},
		"127.0.0.1:53-54:53/udp":  {"53/udp -> 127.0.0.1:53-54"},
	} {
		got, err := ParsePorts([]string{spec})
		if err != nil {
			t.Errorf("ParsePorts(%q): %v", spec, err)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("ParsePorts(%q) = %v, want %v", spec, got, want)
			continue
		}
		for i := range want {
			if got[i].String() != want[i] {
				t.Errorf("ParsePorts(%q)[%d] = %s, want %s", spec, i, got[i], want[i])
			}
		}
	}
	for _, bad := range []string{"", "x", "0", "65536", "80/sctp", "1:2:3:4", "a:80:80", "::1:80:80", "[::1]:80:80",
		"8000-8001:80-82", "90-80", "8001-8000:80", "8080:", "1.2.3.4:x:80"} {
		if _, err := ParsePorts([]string{bad}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParsePorts(%q) = %v, want invalid argument", bad, err)
		}
	}
	all, err := PublishAll([]string{"80/tcp", "53/udp", "80"})
	if err != nil || len(all) != 2 {
		t.Errorf("PublishAll = %v, %v", all, err)
	}
}

func TestExtraHost(t *testing.T) {
	for in, want := range map[string]string{"a:1.2.3.4": "1.2.3.4", "b=::1": "::1", "c:[fe80::1]": "fe80::1", "gw:host-gateway": "host-gateway"} {
		if _, ip, err := ParseExtraHost(in); err != nil || ip != want {
			t.Errorf("ParseExtraHost(%q) = %q, %v", in, ip, err)
		}
	}
	for _, bad := range []string{"nohost", ":1.2.3.4", "a:b"} {
		if _, _, err := ParseExtraHost(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseExtraHost(%q) = %v", bad, err)
		}
	}
}
