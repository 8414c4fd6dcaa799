package testutil

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreListing(t *testing.T) {
	dir := t.TempDir()
	if got := StoreListing(t, filepath.Join(dir, "missing")); got != "" {
		t.Errorf("listing of a missing root = %q, want empty", got)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(dir, "refs")
	if err := os.WriteFile(ref, []byte("aaaa"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("blobs", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	before := StoreListing(t, dir)
	for _, want := range []string{" blobs/sha256\n", " link -> blobs\n", "-rw-r--r-- 4 refs sha256:"} {
		if !strings.Contains(before, want) {
			t.Errorf("listing lacks %q:\n%s", want, before)
		}
	}
	if again := StoreListing(t, dir); again != before {
		t.Errorf("listing changed with no change to the store:\n%s\nthen:\n%s", before, again)
	}
	// Same size, new content: the listing must tell.
	if err := os.WriteFile(ref, []byte("bbbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after := StoreListing(t, dir); after == before {
		t.Errorf("listing did not change when a file's content did:\n%s", after)
	}
	// Spare writable snapshots are not listed; the rest of tmp/ is.
	if err := os.MkdirAll(filepath.Join(dir, "snapshots", "overlay", "tmp", "spare-0", "upper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if after := StoreListing(t, dir); !strings.Contains(after, " snapshots/overlay/tmp\n") || strings.Contains(after, "spare-0") {
		t.Errorf("listing with a spare:\n%s", after)
	}
	if err := os.MkdirAll(filepath.Join(dir, "snapshots", "overlay", "tmp", "active-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if after := StoreListing(t, dir); !strings.Contains(after, "active-1") {
		t.Errorf("listing lacks what else tmp/ holds:\n%s", after)
	}
}

func TestImages(t *testing.T) {
	imgs := Images(t)
	want := map[string][]string{
		imgs.Busybox: {"bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp/"},
		imgs.Hello:   {"hello"},
	}
	for path, names := range want {
		got := tarNames(t, path)
		for _, n := range names {
			if !got[n] {
				t.Errorf("%s lacks %s", path, n)
			}
		}
	}
}

func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := make(map[string]bool)
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		names[h.Name] = true
	}
}

func TestPodman(t *testing.T) {
	p := NewPodman(t, "runc")
	res := p.MustRun("images", "-q")
	if strings.TrimSpace(res.Stdout) != "" {
		t.Errorf("fresh podman storage has images:\n%s", res.Stdout)
	}
}

// TestPodmanCrun runs a container in podman with crun. It mounts the hugetlb
// cgroup hierarchy on the host (see EnsureHugetlbV1), so it runs only when
// BERTH_TEST_CRUN=1.
func TestPodmanCrun(t *testing.T) {
	if os.Getenv("BERTH_TEST_CRUN") != "1" {
		t.Skip("set BERTH_TEST_CRUN=1 to run (mounts the hugetlb cgroup on the host)")
	}
	p := NewPodman(t, "crun")
	p.MustRun("import", "-q", "--change", `CMD ["sh"]`, Images(t).Busybox, "localhost/testutil/busybox:crun")
	res := p.MustRun("run", "--rm", "--network", "none", "localhost/testutil/busybox:crun", "echo", "hi")
	if res.Stdout != "hi\n" {
		t.Errorf("podman --runtime crun run echo hi printed %q", res.Stdout)
	}
	if err := EnsureHugetlbV1(); err != nil {
		t.Errorf("EnsureHugetlbV1 a second time: %v", err)
	}
}
