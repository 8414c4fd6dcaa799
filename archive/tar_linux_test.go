package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// makeTree fills d with one of every kind of entry a layer can hold.
func makeTree(t *testing.T, d string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(d, "dir/sub"), 0o755))
	must(os.WriteFile(filepath.Join(d, "dir/file"), []byte("hello"), 0o644))
	must(os.WriteFile(filepath.Join(d, "setuid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(d, "setuid"), 0o4755|os.ModeSetuid))
	must(os.Mkdir(filepath.Join(d, "tmp"), 0o777))
	must(os.Chmod(filepath.Join(d, "tmp"), 0o777|os.ModeSticky))
	must(os.Lchown(filepath.Join(d, "dir/file"), 1000, 1001))
	must(os.Link(filepath.Join(d, "dir/file"), filepath.Join(d, "hardlink")))
	must(os.Symlink("dir/file", filepath.Join(d, "symlink")))
	must(os.Lchown(filepath.Join(d, "symlink"), 7, 8))
	must(unix.Mknod(filepath.Join(d, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(d, "loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(unix.Mkfifo(filepath.Join(d, "fifo"), 0o600))
	must(unix.Lsetxattr(filepath.Join(d, "dir/file"), "user.k", []byte("v"), 0))
	must(unix.Lsetxattr(filepath.Join(d, "dir"), "trusted.k", []byte("dv"), 0))
	mtime := time.Unix(1600000000, 0)
	for _, p := range []string{"dir/sub", "dir/file", "setuid", "null", "fifo", "dir", "tmp"} {
		must(os.Chtimes(filepath.Join(d, p), mtime, mtime))
	}
	must(unix.Lutimes(filepath.Join(d, "symlink"), []unix.Timeval{{Sec: 1500000000}, {Sec: 1500000000}}))
}

func TestWriteTarApplyRoundTrip(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	var b1, b2 bytes.Buffer
	if err := WriteTar(context.Background(), &b1, src); err != nil {
		t.Fatal(err)
	}
	if err := WriteTar(context.Background(), &b2, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Fatal("WriteTar is not deterministic")
	}
	dst := t.TempDir()
	res, err := Apply(context.Background(), dst, bytes.NewReader(gzipped(t, b1.Bytes())), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.DiffID != digest.FromBytes(b1.Bytes()) {
		t.Errorf("DiffID = %v, want the digest of the tar", res.DiffID)
	}
	// The unpacked tree writes the same tar again.
	var b3 bytes.Buffer
	if err := WriteTar(context.Background(), &b3, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b3.Bytes()) {
		t.Errorf("tar of the unpacked tree differs:\n%v\nwant\n%v", listTar(t, b3.Bytes()), listTar(t, b1.Bytes()))
	}
	var a, h unix.Stat_t
	unix.Lstat(filepath.Join(dst, "dir/file"), &a)
	unix.Lstat(filepath.Join(dst, "hardlink"), &h)
	if a.Ino != h.Ino {
		t.Error("hardlink is not a link to dir/file")
	}
}

func listTar(t *testing.T, b []byte) []string {
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hdr.Name+" "+string(hdr.Typeflag)+" "+os.FileMode(hdr.Mode).String()+" "+hdr.ModTime.String()+" "+hdr.Linkname)
	}
}

func TestDiff(t *testing.T) {
	upper := t.TempDir()
	os.MkdirAll(filepath.Join(upper, "a"), 0o755)
	os.MkdirAll(filepath.Join(upper, "b"), 0o755)
	if err := unix.Mknod(filepath.Join(upper, "a/x"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(upper, "b"), overlayOpaqueXattr, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(upper, "b/z"), []byte("z"), 0o644)
	var buf bytes.Buffer
	if err := Diff(context.Background(), &buf, upper); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := hdr.PAXRecords[paxXattr+overlayOpaqueXattr]; ok {
			t.Errorf("%s carries the overlay opaque xattr", hdr.Name)
		}
		names = append(names, hdr.Name)
	}
	want := []string{"a/", "a/.wh.x", "b/", "b/.wh..wh..opq", "b/z"}
	if !slices.Equal(names, want) {
		t.Errorf("Diff entries = %v, want %v", names, want)
	}
}
