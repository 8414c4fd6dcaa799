package runtime_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/runtime"
)

// TestCacheFilters: containers created with a filter cache compile each
// profile once, and each gets its own profile's filter, the cached one
// included.
func TestCacheFilters(t *testing.T) {
	deny := func(names ...string) func(*specs.Spec) {
		return func(s *specs.Spec) {
			one := uint(1) // EPERM
			s.Linux.Seccomp = &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: []specs.Arch{specs.ArchX86_64},
				Syscalls:      []specs.LinuxSyscall{{Names: names, Action: specs.ActErrno, ErrnoRet: &one}},
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		}
	}
	script := `mkdir /tmp/d 2>/dev/null && echo made || echo nomkdir; cd /tmp 2>/dev/null && echo cd || echo nocd`
	noMkdir := newBundle(t, []string{"sh", "-c", script}, deny("mkdir", "mkdirat"))
	noChdir := newBundle(t, []string{"sh", "-c", script}, deny("chdir"))
	cache := runtime.NewCache()
	root := t.TempDir()
	for i, tc := range []struct {
		bundle, want string
		compiles     int
	}{
		{noMkdir, "nomkdir cd", 1},
		{noMkdir, "nomkdir cd", 1}, // the kept filter
		{noChdir, "made nocd", 2},
		{noMkdir, "nomkdir cd", 2},
		{noChdir, "made nocd", 2},
	} {
		outR, outW, _ := os.Pipe()
		var out bytes.Buffer
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = out.ReadFrom(outR) }()
		code, err := runtime.Run(context.Background(), containerID(t), tc.bundle, runtime.Options{Root: root, Stdout: outW, Stderr: outW, Cache: cache})
		outW.Close()
		wg.Wait()
		if err != nil || code != 0 {
			t.Fatalf("container %d: code %d, %v: %s", i, code, err, out.String())
		}
		if got := strings.Join(strings.Fields(out.String()), " "); got != tc.want {
			t.Errorf("container %d printed %q, want %q", i, got, tc.want)
		}
		if n := cache.Compiles(); n != tc.compiles {
			t.Errorf("after container %d: %d filters compiled, want %d", i, n, tc.compiles)
		}
	}
}
