package runtime

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestPremakeMountPoints(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{rootfs, outside, filepath.Join(dir, "src")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "src", "hostname")
	if err := os.WriteFile(file, []byte("box\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Symlinks resolve inside the rootfs, as in the init: /link to
	// /inside, and /out to the outside directory's path, missing there.
	if err := os.Mkdir(filepath.Join(rootfs, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/inside", filepath.Join(rootfs, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(rootfs, "out")); err != nil {
		t.Fatal(err)
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/etc/hostname", Type: "bind", Source: file, Options: []string{"rbind"}},
		{Destination: "/data/vol", Source: filepath.Join(dir, "src"), Options: []string{"rbind"}},
		{Destination: "/link/x", Type: "bind", Source: file},
		{Destination: "/out/y", Type: "bind", Source: file},
		{Destination: "/mnt", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/mnt/covered", Type: "bind", Source: file},
	}
	premakeMountPoints(rootfs, mounts)
	for p, dirWant := range map[string]bool{"etc/hostname": false, "data/vol": true, "inside/x": false} {
		st, err := os.Stat(filepath.Join(rootfs, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.IsDir() != dirWant {
			t.Errorf("%s: directory %v, want %v", p, st.IsDir(), dirWant)
		}
	}
	for _, p := range []string{filepath.Join(outside, "y"), filepath.Join(rootfs, "proc"), filepath.Join(rootfs, "mnt")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s made", p)
		}
	}
}
