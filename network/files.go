package network

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// Files describe the /etc/hosts, /etc/resolv.conf and /etc/hostname of one
// container.
type Files struct {
	// Hostname is the container's host name (default: none written).
	Hostname string
	// Names are more names of the container's own addresses in /etc/hosts
	// (its name, when it differs from the host name).
	Names []string
	// Endpoints are the container's attachments, in order; the first
	// carries the address of its own names, and the first with a
	// resolver names it in resolv.conf.
	Endpoints []*Endpoint
	// ExtraHosts are --add-host entries, "name:ip" or "name=ip"; the IP
	// "host-gateway" is the first endpoint's gateway.
	ExtraHosts []string
	// DNS, DNSSearch and DNSOptions are --dns, --dns-search and
	// --dns-option. On a network with a resolver they are not written
	// (the resolver forwards to DNS), except search and options.
	DNS, DNSSearch, DNSOptions []string
	// HostResolvConf is the host's resolv.conf (default /etc/resolv.conf),
	// whose non-loopback servers, search and options are used when the
	// container names none of its own.
	HostResolvConf string
}

// WriteFiles writes hosts, resolv.conf and hostname into dir (which must
// exist), for the engine to bind-mount into the container: in place, so
// that a container created on them (see TouchFiles) sees them once its
// process starts.
func WriteFiles(dir string, f Files) error { return writeFiles(dir, f, f.Hostname != "") }

func writeFiles(dir string, f Files, hostname bool) error {
	hosts, err := f.hosts()
	if err != nil {
		return err
	}
	resolv, err := f.resolvConf()
	if err != nil {
		return err
	}
	files := map[string][]byte{"hosts": hosts, "resolv.conf": resolv}
	if hostname {
		files["hostname"] = []byte(f.Hostname + "\n")
	}
	// In place: the runtime may have bound them (TouchFiles made them)
	// into a container, whose process would keep seeing the old files if
	// new ones were renamed over them.
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// TouchFiles makes the files WriteFiles writes in dir, empty if they are
// new, so that they can be bind-mounted before their content is known.
func TouchFiles(dir string) error {
	for _, name := range []string{"hosts", "resolv.conf", "hostname"} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("make %s: %w", name, err)
		}
		f.Close()
	}
	return nil
}

// UpdateFiles rewrites the hosts and resolv.conf that WriteFiles wrote in
// dir, in place, for a running container whose networks changed; its
// hostname file is the container's to change and is left alone.
func UpdateFiles(dir string, f Files) error { return writeFiles(dir, f, false) }

// resolver is the resolver of the first of the container's networks that
// has one (invalid if none does).
func (f Files) resolver() netip.Addr {
	for _, ep := range f.Endpoints {
		if ep.DNSServer.IsValid() {
			return ep.DNSServer
		}
	}
	return netip.Addr{}
}

// ParseExtraHost validates one --add-host entry and returns its name and
// address ("host-gateway" is returned as is).
func ParseExtraHost(s string) (name, ip string, err error) {
	sep := strings.IndexAny(s, ":=")
	if sep <= 0 {
		return "", "", errdefs.InvalidArgument("invalid argument %q for --add-host: want host:ip", s)
	}
	name, ip = s[:sep], s[sep+1:]
	ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	if ip == "host-gateway" {
		return name, ip, nil
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", "", errdefs.InvalidArgument("invalid IP address in --add-host %q: %q", s, ip)
	}
	return name, ip, nil
}

func (f Files) hosts() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, h := range f.ExtraHosts {
		name, ip, err := ParseExtraHost(h)
		if err != nil {
			return nil, err
		}
		if ip == "host-gateway" {
			if len(f.Endpoints) == 0 {
				return nil, errdefs.InvalidArgument("--add-host %s: host-gateway needs a bridge network", h)
			}
			ip = f.Endpoints[0].Gateway.String()
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	var names []string
	for _, n := range append([]string{f.Hostname}, f.Names...) {
		if n != "" && !containsString(names, n) {
			names = append(names, n)
		}
	}
	if len(names) > 0 && len(f.Endpoints) > 0 {
		fmt.Fprintf(&b, "%s\t%s\n", f.Endpoints[0].IP, strings.Join(names, " "))
	}
	return b.Bytes(), nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (f Files) resolvConf() ([]byte, error) {
	for _, d := range f.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return nil, errdefs.InvalidArgument("%s is not an ip address (--dns)", d)
		}
	}
	hostPath := f.HostResolvConf
	if hostPath == "" {
		hostPath = "/etc/resolv.conf"
	}
	host, err := readResolvConf(hostPath)
	if err != nil {
		return nil, err
	}
	servers := f.DNS
	if r := f.resolver(); r.IsValid() {
		servers = []string{r.String()}
	} else if len(servers) == 0 {
		servers = host.servers
		if len(servers) == 0 {
			// Docker's fallback when the host has only local resolvers.
			servers = []string{"8.8.8.8", "8.8.4.4"}
		}
	}
	search, options := f.DNSSearch, f.DNSOptions
	if len(search) == 0 {
		search = host.search
	}
	if len(options) == 0 {
		options = host.options
	}
	var b bytes.Buffer
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 && !(len(search) == 1 && search[0] == ".") {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes(), nil
}

type resolvConf struct {
	servers, search, options []string
}

// readResolvConf reads a resolv.conf, keeping only the servers a container
// can reach: not loopback, whose addresses mean the host's own stack.
func readResolvConf(path string) (resolvConf, error) {
	var rc resolvConf
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rc, nil
	} else if err != nil {
		return rc, fmt.Errorf("read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsLoopback() && a.Is4() {
				rc.servers = append(rc.servers, a.String())
			}
		case "search", "domain":
			rc.search = f[1:]
		case "options":
			rc.options = f[1:]
		}
	}
	return rc, nil
}
