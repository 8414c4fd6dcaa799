package network

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// A busybox httpd published on 127.0.0.1 serves a file to the host; `port`
// and `ps` report the mapping; after rm nothing of the container is left,
// and the default network's bridge stays, as docker0 does.
func TestPublishHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served by busybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "tcp")
	spec := fmt.Sprintf("127.0.0.1:%d:80", port)
	e.b.MustRun(append([]string{"run", "-d", "--name", "web", "-p", spec, "-v", www + ":/www:ro", "busybox"}, "httpd", "-f", "-p", "80", "-h", "/www")...)
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.html", port)); got != "served by busybox\n" {
		t.Errorf("GET index.html: %q", got)
	}
	wantPort := fmt.Sprintf("127.0.0.1:%d", port)
	if got := strings.TrimSpace(e.b.MustRun("port", "web").Stdout); got != "80/tcp -> "+wantPort {
		t.Errorf("port web: %q, want %q", got, "80/tcp -> "+wantPort)
	}
	if got := strings.TrimSpace(e.b.MustRun("port", "web", "80/tcp").Stdout); got != wantPort {
		t.Errorf("port web 80/tcp: %q, want %q", got, wantPort)
	}
	if got := e.b.MustRun("ps", "--format", "{{.Ports}}").Stdout; !strings.Contains(got, wantPort+"->80/tcp") {
		t.Errorf("ps Ports: %q, want %s->80/tcp", got, wantPort)
	}
	if !linkExists(e.bridge) {
		t.Errorf("bridge %s does not exist while a container uses the default network", e.bridge)
	}
	traces := e.traceOf("web", true)
	e.b.MustRun("rm", "-f", "web")
	e.checkGone(traces)
	if !linkExists(e.bridge) {
		t.Errorf("bridge %s of the default network deleted with its last container", e.bridge)
	}
}

// A datagram to a published UDP port reaches the container, and its
// answer comes back. Busybox's nc has no UDP mode: the server is a small Go
// program of the test's own, bind-mounted into the container.
func TestPublishUDP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "udpecho"), "./udpecho")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./udpecho: %v\n%s", err, out)
	}
	port := freePort(t, "udp")
	e.b.MustRun("run", "-d", "--name", "echo", "-p", fmt.Sprintf("127.0.0.1:%d:5353/udp", port),
		"-v", bin+":/t:ro", "busybox", "/t/udpecho", ":5353")
	if got := strings.TrimSpace(e.b.MustRun("port", "echo").Stdout); got != fmt.Sprintf("5353/udp -> 127.0.0.1:%d", port) {
		t.Errorf("port echo: %q", got)
	}
	c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	var got string
	for i := range 50 {
		msg := fmt.Sprintf("datagram %d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			// ECONNREFUSED: an ICMP error from before the server listened.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) == msg {
			got = msg
			break
		}
	}
	if got == "" {
		t.Fatalf("no echo through 127.0.0.1:%d/udp\nlogs: %s", port, e.b.Run("logs", "echo"))
	}
	traces := e.traceOf("echo", true)
	e.b.MustRun("rm", "-f", "echo")
	e.checkGone(traces)
}

// -P publishes the image's EXPOSEd ports on free host ports, which `port`
// reports and which answer.
func TestPublishAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.b.MustRun("import", "-c", `CMD ["sh"]`, "-c", "EXPOSE 80", testutil.Images(t).Busybox, "busyweb")
	e.b.MustRun(append([]string{"run", "-d", "--name", "web", "-P", "busyweb"}, webCmd(80)...)...)
	out := strings.TrimSpace(e.b.MustRun("port", "web").Stdout)
	var port int
	if _, err := fmt.Sscanf(out, "80/tcp -> 0.0.0.0:%d", &port); err != nil || port == 0 {
		t.Fatalf("port web: %q, want 80/tcp -> 0.0.0.0:PORT", out)
	}
	if got := strings.TrimSpace(e.b.MustRun("port", "web", "80").Stdout); got != fmt.Sprintf("0.0.0.0:%d", port) {
		t.Errorf("port web 80: %q", got)
	}
	c := e.inspect("web")[0]
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/hostname", port)); strings.TrimSpace(got) != c.Config.Hostname {
		t.Errorf("GET /hostname through -P: %q, want %q", got, c.Config.Hostname)
	}
	if bs := c.NetworkSettings.Ports["80/tcp"]; len(bs) != 1 || bs[0].HostPort != fmt.Sprint(port) {
		t.Errorf("inspect Ports[80/tcp] = %+v, want host port %d", bs, port)
	}
}

// A host port a socket of the host holds fails run with a clear error
// before anything is made: no container, no endpoint, no bridge.
func TestPublishPortTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	spec := fmt.Sprintf("127.0.0.1:%d:80", port)
	e.mustFail(fmt.Sprintf("127.0.0.1:%d failed: port is already allocated", port),
		append([]string{"run", "-d", "-p", spec, "busybox"}, webCmd(80)...)...)
	if ids := e.containerIDs(); len(ids) > 0 {
		t.Errorf("containers left after a taken port: %q", ids)
	}
	if linkExists(e.bridge) {
		t.Errorf("bridge %s made for a container that never started", e.bridge)
	}
	recs, _ := filepath.Glob(filepath.Join(e.b.RunRoot, "network", "*", "endpoints", "*.json"))
	if len(recs) > 0 {
		t.Errorf("endpoint records left: %q", recs)
	}
	// The same port published twice by berth: the second is refused.
	ln.Close()
	e.b.MustRun(append([]string{"run", "-d", "--name", "first", "-p", spec, "busybox"}, webCmd(80)...)...)
	e.mustFail("port is already allocated", append([]string{"run", "-d", "--name", "second", "-p", spec, "busybox"}, webCmd(80)...)...)
	if ids := e.containerIDs(); len(ids) != 1 {
		t.Errorf("want only the first container, got %q", ids)
	}
}

// A host port range with one container port (`-p 8000-8010:80`, as with
// Docker) publishes on a free port of the range: the range's first port,
// held by a socket of the host, is skipped; `port` names the one chosen.
func TestPublishHostPortRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var held net.Listener
	for range 20 { // a held port whose next one is free now
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		if next, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil && p < 65535 {
			next.Close()
			held = ln
			break
		}
		ln.Close()
	}
	if held == nil {
		t.Skip("no two free consecutive ports on 127.0.0.1")
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	spec := fmt.Sprintf("127.0.0.1:%d-%d:80", port, port+1)
	e.b.MustRun(append([]string{"run", "-d", "--name", "web", "-p", spec, "busybox"}, webCmd(80)...)...)
	want := fmt.Sprintf("127.0.0.1:%d", port+1)
	if got := strings.TrimSpace(e.b.MustRun("port", "web", "80/tcp").Stdout); got != want {
		t.Errorf("port web 80/tcp: %q, want %q", got, want)
	}
	if got := httpGet(t, "http://"+want+"/hostname"); strings.TrimSpace(got) == "" {
		t.Errorf("GET /etc/hostname through %s: empty answer", want)
	}
	e.mustFail("already allocated", append([]string{"run", "-d", "--name", "web2", "-p", spec, "busybox"}, webCmd(80)...)...)
	e.b.MustRun("rm", "-f", "web")
}
