package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rootfsOnce builds one busybox root filesystem that the tests share (they
// only read it, besides the mount points the runtime creates).
var rootfsOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "berth-runtime-test-rootfs-")
	if err != nil {
		return "", err
	}
	if err := testutil.BusyboxRoot(dir); err != nil {
		return "", err
	}
	// For the 126 test: a file that is not executable.
	if err := os.WriteFile(filepath.Join(dir, "bin", "notexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		return "", err
	}
	return dir, nil
})

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates namespaces, mounts and cgroups")
	}
}

// newBundle writes a bundle whose rootfs is the shared busybox tree and
// whose config is runtime.DefaultSpec running args, changed by edit.
func newBundle(t *testing.T, args []string, edit func(*specs.Spec)) string {
	t.Helper()
	needRoot(t)
	rootfs, err := rootfsOnce()
	if err != nil {
		t.Fatalf("busybox rootfs: %v", err)
	}
	dir := t.TempDir()
	s := runtime.DefaultSpec()
	s.Root.Path = rootfs
	s.Process.Args = args
	if edit != nil {
		edit(s)
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type result struct {
	code           int
	stdout, stderr string
	err            error
}

// runIn runs the bundle to completion with Run, under a state root of the
// test's own, and returns what the process printed.
func runIn(t *testing.T, root, bundle string) result {
	t.Helper()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	var stdout, stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = stdout.ReadFrom(outR) }()
	go func() { defer wg.Done(); _, _ = stderr.ReadFrom(errR) }()
	id := containerID(t)
	code, err := runtime.Run(context.Background(), id, bundle, runtime.Options{Root: root, Stdout: outW, Stderr: errW})
	outW.Close()
	errW.Close()
	wg.Wait()
	return result{code, stdout.String(), stderr.String(), err}
}

func run(t *testing.T, bundle string) result {
	t.Helper()
	return runIn(t, t.TempDir(), bundle)
}

// mustRun runs and fails the test unless the process exits 0; it returns
// stdout.
func mustRun(t *testing.T, args []string, edit func(*specs.Spec)) string {
	t.Helper()
	r := run(t, newBundle(t, args, edit))
	if r.err != nil || r.code != 0 {
		t.Fatalf("run %q: code %d, err %v, stderr %q", args, r.code, r.err, r.stderr)
	}
	return r.stdout
}

func containerID(t *testing.T) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	return fmt.Sprintf("%s-%d", name, os.Getpid())
}

// assertNothingLeft checks that a failed create left no state directory,
// cgroup or mount behind.
func assertNothingLeft(t *testing.T, root, id, rootfs string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s left behind (%v)", filepath.Join(root, id), err)
	}
	for _, h := range []string{"memory", "pids", "cpu", "devices", "freezer", "unified", ""} {
		p := filepath.Join("/sys/fs/cgroup", h, "berth", id)
		if _, err := os.Stat(p); err == nil {
			t.Errorf("cgroup %s left behind", p)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if rootfs != "" && strings.Contains(string(mi), rootfs) {
		t.Errorf("a mount under %s is left behind", rootfs)
	}
}
