package external

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bundle makes a busybox bundle running args.
func bundle(t *testing.T, args ...string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(bb)
	os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755)
	for _, a := range []string{"sh", "sleep", "true"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", a))
	}
	s := runtime.DefaultSpec()
	s.Process.Args = args
	s.Linux.Namespaces = s.Linux.Namespaces[:5] // crun and runc alike
	cfg, _ := json.Marshal(s)
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	return dir
}

// TestExternalRuntimes drives runc and crun through the same lifecycle.
func TestExternalRuntimes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, name := range []string{"runc", "crun"} {
		t.Run(name, func(t *testing.T) {
			path, err := exec.LookPath(name)
			if err != nil {
				t.Skipf("%s is not installed", name)
			}
			if name == "crun" {
				hybridHugetlb(t)
			}
			ctx := context.Background()
			r := &Runtime{Path: path, Root: t.TempDir()}
			id := "berth-external-" + name
			if err := r.Create(ctx, id, bundle(t, "sleep", "100"), CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			defer r.Delete(ctx, id, true)
			st, err := r.State(ctx, id)
			if err != nil || st.Status != specs.StateCreated || st.Pid <= 0 {
				t.Fatalf("state after create: %+v %v", st, err)
			}
			if err := r.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := r.Kill(ctx, id, syscall.SIGKILL, false); err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				st, err = r.State(ctx, id)
				if err == nil && st.Status == specs.StateStopped {
					break
				}
				if i > 100 {
					t.Fatalf("not stopped after kill: %+v %v", st, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := r.Delete(ctx, id, false); err != nil {
				t.Fatal(err)
			}
			if _, err := r.State(ctx, id); !errdefs.IsNotFound(err) && (err == nil || !strings.Contains(err.Error(), id)) {
				t.Errorf("state after delete: %v", err)
			}
		})
	}
}

// hybridHugetlb gives hugetlb a v1 hierarchy of its own on a hybrid host,
// without which crun refuses to run (see PEERS.md).
func hybridHugetlb(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/unified"); err != nil {
		return
	}
	if _, err := os.Stat("/sys/fs/cgroup/hugetlb/cgroup.procs"); err == nil {
		return
	}
	os.MkdirAll("/sys/fs/cgroup/hugetlb", 0o755)
	if out, err := exec.Command("mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb").CombinedOutput(); err != nil {
		t.Skipf("crun needs hugetlb off the cgroup2 mount: %v %s", err, out)
	}
}
