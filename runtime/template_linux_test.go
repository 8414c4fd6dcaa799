package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime"
)

// TestMountTemplate creates containers from a mount namespace template: a
// bind from under a root works; a bind of a mount made under a root after
// the template (which the template cannot see) still shows what the host
// shows; and a container that joined another's network namespace leaves
// the template's thread where it was, so that the next container on the
// host's network is on the host's.
func TestMountTemplate(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	base := t.TempDir()
	roots, prune := filepath.Join(base, "roots"), filepath.Join(base, "roots", "containers")
	for _, d := range []string{filepath.Join(prune, "c1"), filepath.Join(roots, "data"), filepath.Join(roots, "late")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A mount of another container's, which the template leaves out.
	if err := unix.Mount("tmpfs", filepath.Join(prune, "c1"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(prune, "c1"), unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(roots, "data", "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	host := threadNS(t, "net")
	tmpl, err := runtime.NewMountTemplate(prune, roots)
	if err != nil {
		t.Fatal(err)
	}
	// Mounted after the template was made: not in it.
	late := filepath.Join(roots, "late")
	if err := unix.Mount("tmpfs", late, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(late, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(late, "f"), []byte("late"), 0o644); err != nil {
		t.Fatal(err)
	}

	runWith := func(args []string, edit func(*specs.Spec)) string {
		t.Helper()
		outR, outW, _ := os.Pipe()
		c, err := runtime.Create(ctx, containerID(t), newBundle(t, args, edit), runtime.Options{Root: t.TempDir(), Stdout: outW, Template: tmpl})
		outW.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Delete(ctx, true)
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		n, _ := outR.Read(b)
		outR.Close()
		return string(b[:n])
	}
	bind := func(src, dst string) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind"}})
		}
	}
	if out := runWith([]string{"cat", "/data/f"}, bind(filepath.Join(roots, "data"), "/data")); out != "data" {
		t.Errorf("bind from under a root: %q, want %q", out, "data")
	}
	if out := runWith([]string{"cat", "/late/f"}, bind(late, "/late")); out != "late" {
		t.Errorf("bind of a mount made after the template: %q, want %q", out, "late")
	}

	// Join the network namespace of a container of ours, then run one on
	// the host's network.
	a, err := runtime.Create(ctx, containerID(t)+"-a", newBundle(t, []string{"sleep", "1000"}, nil), runtime.Options{Root: t.TempDir(), Template: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Delete(ctx, true)
	defer a.Release()
	netns := fmt.Sprintf("/proc/%d/ns/net", a.Pid())
	joined, _ := os.Readlink(netns)
	if joined == host {
		t.Fatalf("container a is on the host's network (%s)", host)
	}
	setNet := func(path string, keep bool) func(*specs.Spec) {
		return func(s *specs.Spec) {
			var ns []specs.LinuxNamespace
			for _, n := range s.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace {
					if !keep {
						continue
					}
					n.Path = path
				}
				ns = append(ns, n)
			}
			s.Linux.Namespaces = ns
		}
	}
	if out := strings.TrimSpace(runWith([]string{"readlink", "/proc/self/ns/net"}, setNet(netns, true))); out != joined {
		t.Errorf("joined network namespace %q, want %q", out, joined)
	}
	if out := strings.TrimSpace(runWith([]string{"readlink", "/proc/self/ns/net"}, setNet("", false))); out != host {
		t.Errorf("host network: in %q, want the host's %q", out, host)
	}

}

// threadNS returns the namespace of the given kind of a thread of this
// process other than the main one (which an earlier test that joined a
// namespace on a thread it locked for good may have left in it: the Go
// runtime parks the main thread rather than end it).
func threadNS(t *testing.T, kind string) string {
	t.Helper()
	c := make(chan string)
	go func() {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		if unix.Gettid() == unix.Getpid() {
			go func() { c <- threadNS(t, kind) }()
			return
		}
		l, err := os.Readlink("/proc/thread-self/ns/" + kind)
		if err != nil {
			t.Error(err)
		}
		c <- l
	}()
	return <-c
}
