package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/registry"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// newBerth returns a berth client with a store and Docker configuration of
// its own, or skips when its binary has no push and pull.
func newBerth(t *testing.T) *testutil.Berth {
	t.Helper()
	b := testutil.NewBerth(t)
	if res := b.Run("pull", "--help"); res.Code != 0 {
		t.Skip("this berth has no pull command")
	}
	b.Env = append(b.Env, "DOCKER_CONFIG="+t.TempDir())
	return b
}

// runHello runs ref with berth and checks what it prints; running
// containers needs root.
func runHello(t *testing.T, b *testutil.Berth, ref string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Logf("not root: not running %s", ref)
		return
	}
	res := b.MustRun("run", "--rm", "--network", "none", ref, "echo", "hello from the registry")
	if !strings.Contains(res.Stdout, "hello from the registry") {
		t.Fatalf("berth run %s printed %q", ref, res.Stdout)
	}
}

// TestBerthClient: berth push into berth registry serve, rmi, pull, run;
// then the same image through a pull-through cache of that registry.
func TestBerthClient(t *testing.T) {
	if testing.Short() {
		t.Skip("interop: skipped with -short")
	}
	addr := serve(t, registry.Config{})
	b := newBerth(t)
	ref := addr + "/x:1"
	b.MustRun("import", "--change", `CMD ["/bin/sh"]`, testutil.Images(t).Busybox, ref)
	if out := b.MustRun("push", ref).Stdout; !strings.Contains(out, "1: digest: sha256:") {
		t.Fatalf("push output:\n%s", out)
	}
	b.MustRun("rmi", ref)
	if out := b.MustRun("pull", ref).Stdout; !strings.Contains(out, "Downloaded newer image for "+ref) {
		t.Fatalf("pull output:\n%s", out)
	}
	runHello(t, b, ref)

	var cfg registry.Config
	cfg.Proxies = []registry.ProxyConfig{{Prefix: "up", URL: "http://" + addr}}
	cache := serve(t, cfg)
	cached := cache + "/up/x:1"
	b2 := newBerth(t)
	b2.MustRun("pull", cached)
	runHello(t, b2, cached)
	if res := b2.Run("push", cached); res.Code == 0 {
		t.Errorf("push into a pull-through cache succeeded: %s", res)
	}
}

// TestPodman: podman pushes to and pulls from berth registry serve over
// plain HTTP, and each of podman and berth pulls what the other pushed.
func TestPodman(t *testing.T) {
	if testing.Short() {
		t.Skip("interop: skipped with -short")
	}
	need(t, "podman", "podman")
	addr := serve(t, registry.Config{})
	p := testutil.NewPodman(t, "runc")
	busybox := testutil.Images(t).Busybox
	local := "localhost/interop/bb:1"
	p.MustRun("import", "--change", `CMD ["/bin/sh"]`, busybox, local)
	ref := addr + "/podman/bb:1"
	p.MustRun("push", "--tls-verify=false", local, "docker://"+ref)
	p.MustRun("rmi", local)
	p.MustRun("pull", "--tls-verify=false", ref)
	if os.Geteuid() == 0 {
		res := p.MustRun("run", "--rm", "--network", "none", ref, "echo", "hi")
		if res.Stdout != "hi\n" {
			t.Errorf("podman run %s printed %q", ref, res.Stdout)
		}
	}

	// berth pulls what podman pushed; podman pulls what berth pushed.
	b := newBerth(t)
	b.MustRun("pull", ref)
	runHello(t, b, ref)
	fromBerth := addr + "/berth/bb:2"
	b.MustRun("import", "--change", `CMD ["/bin/sh"]`, busybox, fromBerth)
	b.MustRun("push", fromBerth)
	p.MustRun("pull", "--tls-verify=false", fromBerth)
	if os.Geteuid() == 0 {
		res := p.MustRun("run", "--rm", "--network", "none", fromBerth, "echo", "hi")
		if res.Stdout != "hi\n" {
			t.Errorf("podman run %s printed %q", fromBerth, res.Stdout)
		}
	}
}

// TestPodmanTLSBasicAuth: podman logs in to berth registry serve over TLS
// (verifying the registry's certificate) with basic auth, pushes, pulls
// back and runs; without credentials it is refused.
func TestPodmanTLSBasicAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("interop: skipped with -short")
	}
	need(t, "podman", "podman")
	var cfg registry.Config
	cfg.TLS.Cert, cfg.TLS.Key = selfSigned(t)
	cfg.Auth.Htpasswd = htpasswd(t, "alice", "wonderland")
	addr := serve(t, cfg)
	// podman trusts the certificates of --cert-dir: the self-signed one is
	// its own CA.
	certs := t.TempDir()
	certPEM, err := os.ReadFile(cfg.TLS.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, "ca.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	authfile := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(authfile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testutil.NewPodman(t, "runc")
	tlsArgs := []string{"--cert-dir", certs, "--authfile", authfile}

	local := "localhost/interop/tls:1"
	p.MustRun("import", "--change", `CMD ["/bin/sh"]`, testutil.Images(t).Busybox, local)
	ref := addr + "/secure/bb:1"
	// Refused for want of credentials, past a verified TLS handshake.
	if res := p.Run(append(append([]string{"push"}, tlsArgs...), local, "docker://"+ref)...); res.Code == 0 ||
		!strings.Contains(res.Stderr, "unauthorized") {
		t.Fatalf("push without credentials: %s", res)
	}
	p.MustRun(append(append([]string{"login"}, tlsArgs...), "--username", "alice", "--password", "wonderland", addr)...)
	p.MustRun(append(append([]string{"push"}, tlsArgs...), local, "docker://"+ref)...)
	p.MustRun("rmi", local)
	p.MustRun(append(append([]string{"pull"}, tlsArgs...), ref)...)
	if os.Geteuid() == 0 {
		res := p.MustRun("run", "--rm", "--network", "none", ref, "echo", "hi")
		if res.Stdout != "hi\n" {
			t.Errorf("podman run %s printed %q", ref, res.Stdout)
		}
	}
	p.MustRun("rmi", ref)
	p.MustRun(append(append([]string{"logout"}, "--authfile", authfile), addr)...)
	if res := p.Run(append(append([]string{"pull"}, tlsArgs...), ref)...); res.Code == 0 ||
		!strings.Contains(res.Stderr, "unauthorized") {
		t.Fatalf("pull after logout: %s", res)
	}
}
