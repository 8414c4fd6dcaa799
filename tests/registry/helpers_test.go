package registry

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry"
)

// serve starts a registry with cfg (Root and Addr filled in when empty) on a
// free loopback port and returns its address. It stops with the test.
func serve(t *testing.T, cfg registry.Config) string {
	t.Helper()
	addr, _ := serveStoppable(t, cfg)
	return addr
}

// serveStoppable is serve that can also be stopped before the test ends.
func serveStoppable(t *testing.T, cfg registry.Config) (string, func()) {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	r, err := registry.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- r.Serve(ctx, func(a net.Addr) { addrc <- a }) }()
	select {
	case a := <-addrc:
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-errc; err != nil {
					t.Errorf("registry: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return a.String(), stop
	case err := <-errc:
		cancel()
		t.Fatalf("registry: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("registry did not start")
	}
	return "", nil
}

// need makes sure a command is installed, installing pkg with apt-get if
// it is not, and skips the test when that fails.
func need(t *testing.T, cmd, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(cmd); err == nil {
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("%s is not installed and we are not root to install %s", cmd, pkg)
	}
	out, err := exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", pkg).CombinedOutput()
	if err != nil {
		t.Skipf("%s is not installed and apt-get install %s failed: %v\n%s", cmd, pkg, err, out)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return filepath.Clean(string(out[:len(out)-1]))
}
