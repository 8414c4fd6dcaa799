// Package testsuite is the conformance suite of snapshot.Snapshotter: every
// driver runs it, on the real kernel, as root.
package testsuite

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/snapshot"
)

// Run runs the suite. newSnapshotter opens a snapshotter in the empty
// directory root.
func Run(t *testing.T, newSnapshotter func(t *testing.T, root string) snapshot.Snapshotter) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s snapshot.Snapshotter, root string)
	}{
		{"Layers", testLayers},
		{"ConcurrentCreateLayer", testConcurrentCreateLayer},
		{"FailingFill", testFailingFill},
		{"PrepareMountRemove", testPrepareMountRemove},
		{"Whiteouts", testWhiteouts},
		{"Metadata", testMetadata},
		{"RemoveLayerInUse", testRemoveLayerInUse},
		{"ManyLayers", testManyLayers},
		{"Changes", testChanges},
		{"Discard", testDiscard},
		{"Lookup", testLookup},
		{"Spares", testSpares},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.fn(t, newSnapshotter(t, root), root)
		})
	}
}

// id returns a chain ID for a test layer.
func id(name string) digest.Digest { return digest.FromString(name) }

type file struct{ name, data string }

// layer returns a tar stream of files: directories when the name ends in a
// slash, regular files otherwise.
func layer(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(1700000000, 0)}
		if strings.HasSuffix(f.name, "/") {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// unpack returns a fill function that applies the tar stream b.
func unpack(s snapshot.Snapshotter, b []byte) func(string) error {
	return func(dir string) error {
		_, err := archive.Apply(context.Background(), dir, bytes.NewReader(b), archive.ApplyOptions{Whiteouts: s.WhiteoutMode()})
		return err
	}
}

func createLayer(t *testing.T, s snapshot.Snapshotter, chainID, parent digest.Digest, b []byte) snapshot.Info {
	t.Helper()
	info, err := s.CreateLayer(context.Background(), chainID, parent, unpack(s, b))
	if err != nil {
		t.Fatalf("CreateLayer %s: %v", chainID, err)
	}
	return info
}

// mount prepares the snapshot key on parent and mounts it on a fresh
// directory, unmounted at the end of the test.
func mount(t *testing.T, s snapshot.Snapshotter, key string, parent digest.Digest) string {
	t.Helper()
	mounts, err := s.Prepare(context.Background(), key, parent)
	if err != nil {
		t.Fatalf("Prepare %q: %v", key, err)
	}
	target := t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatalf("MountAll %v: %v", mounts, err)
	}
	t.Cleanup(func() { snapshot.Unmount(target) })
	return target
}

// files lists everything under root, directories with a trailing slash,
// but for the spare writable snapshots kept for later Prepares (see
// MakeSpares): not something left behind.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && filepath.Base(filepath.Dir(p)) == "tmp" && strings.HasPrefix(d.Name(), "spare-") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mountsUnder lists the mount points at or under dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

func testLayers(t *testing.T, s snapshot.Snapshotter, root string) {
	ctx := context.Background()
	l0, l1 := id("l0"), id("l1")
	info := createLayer(t, s, l0, "", layer(t, file{name: "etc/"}, file{name: "etc/hostname", data: "berth"}))
	if info.ChainID != l0 || info.Parent != "" || info.Size <= 0 || info.Created.IsZero() {
		t.Errorf("CreateLayer = %+v", info)
	}
	createLayer(t, s, l1, l0, layer(t, file{name: "bin/"}))
	got, err := s.Stat(ctx, l1)
	if err != nil || got.ChainID != l1 || got.Parent != l0 {
		t.Errorf("Stat = %+v, %v; want %s on %s", got, err, l1, l0)
	}
	if _, err := s.Stat(ctx, id("none")); !errdefs.IsNotFound(err) {
		t.Errorf("Stat of a missing layer = %v, want not found", err)
	}
	layers, err := s.Layers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range layers {
		ids = append(ids, l.ChainID.String())
	}
	slices.Sort(ids)
	want := []string{l0.String(), l1.String()}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Layers = %v, want %v", ids, want)
	}
	if _, err := s.CreateLayer(ctx, l0, "", unpack(s, nil)); !errdefs.IsAlreadyExists(err) {
		t.Errorf("CreateLayer of an existing layer = %v, want already exists", err)
	}
	if _, err := s.CreateLayer(ctx, id("orphan"), id("none"), unpack(s, nil)); !errdefs.IsNotFound(err) {
		t.Errorf("CreateLayer on a missing parent = %v, want not found", err)
	}
	if u, err := s.Usage(ctx, l0); err != nil || u <= 0 {
		t.Errorf("Usage = %d, %v", u, err)
	}
	if s.Driver() == "native" {
		// A native layer holds its whole chain.
		if _, err := s.Prepare(ctx, "c", l1); err != nil {
			t.Fatal(err)
		}
		upper, _ := s.UpperDir(ctx, "c")
		if b, err := os.ReadFile(filepath.Join(upper, "etc/hostname")); err != nil || string(b) != "berth" {
			t.Errorf("etc/hostname in the native copy = %q, %v", b, err)
		}
	}
}

func testConcurrentCreateLayer(t *testing.T, s snapshot.Snapshotter, root string) {
	const n = 8
	b := layer(t, file{name: "a/"}, file{name: "a/f", data: strings.Repeat("x", 1<<20)})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateLayer(context.Background(), id("same"), "", unpack(s, b))
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errdefs.IsAlreadyExists(err):
			t.Errorf("CreateLayer = %v, want success or already exists", err)
		}
	}
	if created != 1 {
		t.Errorf("%d CreateLayer calls created the layer, want 1", created)
	}
	layers, err := s.Layers(context.Background())
	if err != nil || len(layers) != 1 {
		t.Errorf("Layers = %v, %v; want one", layers, err)
	}
}

func testFailingFill(t *testing.T, s snapshot.Snapshotter, root string) {
	ctx := context.Background()
	createLayer(t, s, id("base"), "", layer(t, file{name: "f", data: "f"}))
	before := files(t, root)
	boom := errors.New("boom")
	_, err := s.CreateLayer(ctx, id("failed"), id("base"), func(dir string) error {
		os.WriteFile(filepath.Join(dir, "half"), []byte("written"), 0o644)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("CreateLayer = %v, want the fill's error", err)
	}
	// A corrupt layer fails the same way.
	gz := layer(t, file{name: "big", data: strings.Repeat("y", 100000)})
	if _, err := s.CreateLayer(ctx, id("corrupt"), "", unpack(s, gz[:len(gz)/2])); !errors.Is(err, errdefs.ErrDataCorrupt) {
		t.Fatalf("CreateLayer of a truncated layer = %v, want data corrupt", err)
	}
	if _, err := s.Stat(ctx, id("failed")); !errdefs.IsNotFound(err) {
		t.Errorf("Stat after a failed fill = %v, want not found", err)
	}
	if after := files(t, root); !slices.Equal(before, after) {
		t.Errorf("a failed CreateLayer left files behind:\nbefore %v\nafter  %v", before, after)
	}
}

func testPrepareMountRemove(t *testing.T, s snapshot.Snapshotter, root string) {
	ctx := context.Background()
	createLayer(t, s, id("base"), "", layer(t, file{name: "etc/"}, file{name: "etc/os-release", data: "berth"}))
	before := files(t, root)

	for _, parent := range []digest.Digest{id("base"), ""} {
		key := "container-" + string(parent)
		mounts, err := s.Prepare(ctx, key, parent)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prepare(ctx, key, parent); !errdefs.IsAlreadyExists(err) {
			t.Errorf("Prepare of a used key = %v, want already exists", err)
		}
		again, err := s.Mounts(ctx, key)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(mounts) {
			t.Errorf("Mounts = %v, %v; want %v", again, err, mounts)
		}
		target := t.TempDir()
		if err := snapshot.MountAll(mounts, target); err != nil {
			t.Fatal(err)
		}
		if parent != "" {
			if b, err := os.ReadFile(filepath.Join(target, "etc/os-release")); err != nil || string(b) != "berth" {
				t.Errorf("etc/os-release = %q, %v", b, err)
			}
		}
		if err := os.WriteFile(filepath.Join(target, "new"), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := snapshot.Unmount(target); err != nil {
			t.Fatal(err)
		}
		if m := mountsUnder(t, target); len(m) != 0 {
			t.Errorf("still mounted after Unmount: %v", m)
		}
		upper, err := s.UpperDir(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(upper, "new")); err != nil || string(b) != "new" {
			t.Errorf("new in the upper dir = %q, %v", b, err)
		}
		actives, err := s.Actives(ctx)
		if err != nil || len(actives) != 1 || actives[0].Key != key || actives[0].Parent != parent {
			t.Errorf("Actives = %+v, %v; want %q on %q", actives, err, key, parent)
		}
		if err := s.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mounts(ctx, key); !errdefs.IsNotFound(err) {
			t.Errorf("Mounts after Remove = %v, want not found", err)
		}
	}
	if after := files(t, root); !slices.Equal(before, after) {
		t.Errorf("Prepare and Remove left files behind:\nbefore %v\nafter  %v", before, after)
	}
	if m := mountsUnder(t, root); len(m) != 0 {
		t.Errorf("mounts left under the store: %v", m)
	}
	if _, err := s.Prepare(ctx, "orphan", id("none")); !errdefs.IsNotFound(err) {
		t.Errorf("Prepare on a missing parent = %v, want not found", err)
	}
}

func testWhiteouts(t *testing.T, s snapshot.Snapshotter, root string) {
	l1, l2 := id("l1"), id("l2")
	createLayer(t, s, l1, "", layer(t,
		file{name: "a/"}, file{name: "a/x", data: "x"}, file{name: "a/keep", data: "k"},
		file{name: "b/"}, file{name: "b/y", data: "y"}))
	createLayer(t, s, l2, l1, layer(t,
		file{name: "a/"}, file{name: "a/.wh.x"},
		file{name: "b/"}, file{name: "b/.wh..wh..opq"}, file{name: "b/z", data: "z"}))
	target := mount(t, s, "c", l2)
	want := []string{"./", "a/", "a/keep", "b/", "b/z"}
	if got := files(t, target); !slices.Equal(got, want) {
		t.Errorf("mounted tree = %v, want %v", got, want)
	}
}

// testLookup: Lookup sees a layer chain's root as a mount of it shows it,
// whiteouts and opaque directories included, without mounting.
func testLookup(t *testing.T, s snapshot.Snapshotter, root string) {
	ctx := context.Background()
	l1, l2, l3 := id("l1"), id("l2"), id("l3")
	createLayer(t, s, l1, "", layer(t,
		file{name: "a/"}, file{name: "a/x", data: "x"}, file{name: "a/keep", data: "k"},
		file{name: "b/"}, file{name: "b/y", data: "y"}, file{name: "f", data: "f"}))
	createLayer(t, s, l2, l1, layer(t,
		file{name: "a/"}, file{name: "a/.wh.x"},
		file{name: "b/"}, file{name: "b/.wh..wh..opq"}, file{name: "b/z", data: "z"}))
	createLayer(t, s, l3, l2, layer(t, file{name: "c/"}, file{name: "c/n", data: "nn"}))
	target := mount(t, s, "m", l3)
	for _, p := range []string{"a", "a/x", "a/keep", "b", "b/y", "b/z", "c", "c/n", "f", "f/g", "nope", "a/nope/deeper", "/c/../a/keep"} {
		want, werr := os.Lstat(filepath.Join(target, filepath.Clean("/"+p)))
		got, err := s.Lookup(ctx, l3, p)
		if werr != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Lookup(%q) = %v, %v; the mount has no such entry", p, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Lookup(%q): %v; the mount has %v", p, err, want.Mode())
			continue
		}
		if got.Mode() != want.Mode() || !got.IsDir() && got.Size() != want.Size() {
			t.Errorf("Lookup(%q) = %v %d, the mount has %v %d", p, got.Mode(), got.Size(), want.Mode(), want.Size())
		}
	}
	// A lower layer's view is its own.
	if _, err := s.Lookup(ctx, l1, "a/x"); err != nil {
		t.Errorf("Lookup(a/x) in the bottom layer: %v", err)
	}
	if _, err := s.Lookup(ctx, id("none"), "a"); !errdefs.IsNotFound(err) {
		t.Errorf("Lookup in a missing layer: %v, want not found", err)
	}
}

// testChanges changes a mounted snapshot and reads its changes back as a
// layer: what was added, changed and deleted, nothing else.
func testChanges(t *testing.T, s snapshot.Snapshotter, root string) {
	l1 := id("l1")
	createLayer(t, s, l1, "", layer(t,
		file{name: "same/"}, file{name: "same/file", data: "s"},
		file{name: "etc/"}, file{name: "etc/conf", data: "old"}, file{name: "etc/gone", data: "g"},
		file{name: "tree/"}, file{name: "tree/leaf", data: "l"}))
	target := mount(t, s, "c", l1)
	for _, err := range []error{
		os.WriteFile(filepath.Join(target, "etc/conf"), []byte("new!"), 0o644),
		os.Remove(filepath.Join(target, "etc/gone")),
		os.RemoveAll(filepath.Join(target, "tree")),
		os.MkdirAll(filepath.Join(target, "added/sub"), 0o755),
		os.WriteFile(filepath.Join(target, "added/sub/f"), []byte("a"), 0o600),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ch, err := s.Changes(context.Background(), "c")
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	var buf bytes.Buffer
	if err := archive.Diff(context.Background(), &buf, ch.Upper); err != nil {
		t.Fatalf("archive.Diff of the changes: %v", err)
	}
	got := listTar(t, buf.Bytes())
	for _, want := range []string{"added/sub/f", "etc/conf", "etc/.wh.gone", ".wh.tree"} {
		if !strings.Contains(got, want) {
			t.Errorf("the changes' layer lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "same") || strings.Contains(got, "tree/leaf") {
		t.Errorf("the changes' layer holds what did not change:\n%s", got)
	}
	if len(ch.Lowers) == 0 {
		t.Errorf("Changes gave no lower directories")
	} else if _, err := os.Stat(filepath.Join(ch.Lowers[0], "etc/gone")); err != nil {
		t.Errorf("the lower directory lacks the parent's etc/gone: %v", err)
	}
	ch.Release()
	if _, err := s.Changes(context.Background(), "missing"); !errdefs.IsNotFound(err) {
		t.Errorf("Changes of a missing snapshot = %v, want not found", err)
	}
}

// testDiscard: a discarded snapshot is gone from the store at once (its
// key free again), and its files once purged.
func testDiscard(t *testing.T, s snapshot.Snapshotter, root string) {
	ctx := context.Background()
	l1 := id("l1")
	createLayer(t, s, l1, "", layer(t, file{name: "f", data: "f"}))
	if _, err := s.Prepare(ctx, "c", l1); err != nil {
		t.Fatal(err)
	}
	before := files(t, root)
	purge, err := s.Discard(ctx, "c")
	if err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if _, err := s.Mounts(ctx, "c"); !errdefs.IsNotFound(err) {
		t.Errorf("Mounts of a discarded snapshot = %v, want not found", err)
	}
	if actives, _ := s.Actives(ctx); len(actives) != 0 {
		t.Errorf("Actives lists %v after Discard", actives)
	}
	if _, err := s.Prepare(ctx, "c", l1); err != nil {
		t.Errorf("Prepare of a discarded key: %v", err)
	}
	if err := purge(); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if after := files(t, root); !slices.Equal(after, before) {
		t.Errorf("after purge the store holds %v, want %v", after, before)
	}
	if _, err := s.Discard(ctx, "missing"); !errdefs.IsNotFound(err) {
		t.Errorf("Discard of a missing snapshot = %v, want not found", err)
	}
}

// makeTree fills d with one of every kind of file a layer can hold.
func makeTree(t *testing.T, d string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(s string) string { return filepath.Join(d, s) }
	must(os.MkdirAll(p("dir/sub"), 0o750))
	must(os.WriteFile(p("dir/file"), []byte("hello"), 0o640))
	must(os.Lchown(p("dir/file"), 1000, 1001))
	must(unix.Setxattr(p("dir/file"), "user.berth", []byte("v"), 0))
	must(unix.Setxattr(p("dir"), "trusted.berth", []byte("d"), 0))
	must(os.WriteFile(p("setuid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(p("setuid"), 0o755|os.ModeSetuid|os.ModeSetgid))
	must(os.Mkdir(p("tmp"), 0o777))
	must(os.Chmod(p("tmp"), 0o777|os.ModeSticky))
	must(os.Link(p("dir/file"), p("hardlink")))
	must(os.Symlink("dir/file", p("symlink")))
	must(os.Lchown(p("symlink"), 5, 6))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(p("sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	must(unix.Mkfifo(p("fifo"), 0o600))
	for _, f := range []string{"dir/sub", "dir/file", "dir", "setuid", "tmp", "null", "sda", "fifo"} {
		must(os.Chtimes(p(f), time.Unix(1600000000, 0), time.Unix(1600000000, 0)))
	}
}

func tarOf(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := archive.WriteTar(context.Background(), &buf, dir); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testMetadata(t *testing.T, s snapshot.Snapshotter, root string) {
	src := t.TempDir()
	makeTree(t, src)
	createLayer(t, s, id("l0"), "", tarOf(t, src))

	// A second layer adds a file; the first one's files show through.
	add := t.TempDir()
	os.WriteFile(filepath.Join(add, "added"), []byte("added"), 0o600)
	os.Chtimes(filepath.Join(add, "added"), time.Unix(1600000000, 0), time.Unix(1600000000, 0))
	createLayer(t, s, id("l1"), id("l0"), tarOf(t, add))
	os.Link(filepath.Join(add, "added"), filepath.Join(src, "added"))

	target := mount(t, s, "c", id("l1"))
	if got, want := tarOf(t, target), tarOf(t, src); !bytes.Equal(got, want) {
		t.Errorf("the mounted tree differs from the layers':\n%s\nwant\n%s", listTar(t, got), listTar(t, want))
	}
}

func listTar(t *testing.T, b []byte) string {
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return strings.Join(out, "\n")
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %c %o %d:%d %s %q %v", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime.UTC(), hdr.Linkname, hdr.PAXRecords))
	}
}

func testRemoveLayerInUse(t *testing.T, s snapshot.Snapshotter, root string) {
	ctx := context.Background()
	l0, l1 := id("l0"), id("l1")
	createLayer(t, s, l0, "", layer(t, file{name: "a", data: "a"}))
	createLayer(t, s, l1, l0, layer(t, file{name: "b", data: "b"}))
	if _, err := s.Prepare(ctx, "c", l1); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveLayer(ctx, l0); !errors.Is(err, errdefs.ErrInUse) {
		t.Errorf("RemoveLayer of a parent layer = %v, want in use", err)
	}
	if err := s.RemoveLayer(ctx, l1); !errors.Is(err, errdefs.ErrInUse) {
		t.Errorf("RemoveLayer of a parent of a snapshot = %v, want in use", err)
	}
	if err := s.Remove(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for _, l := range []digest.Digest{l1, l0} {
		if err := s.RemoveLayer(ctx, l); err != nil {
			t.Fatalf("RemoveLayer %s: %v", l, err)
		}
	}
	if err := s.RemoveLayer(ctx, l0); !errdefs.IsNotFound(err) {
		t.Errorf("RemoveLayer of a removed layer = %v, want not found", err)
	}
	if layers, err := s.Layers(ctx); err != nil || len(layers) != 0 {
		t.Errorf("Layers = %v, %v; want none", layers, err)
	}
}

func testManyLayers(t *testing.T, s snapshot.Snapshotter, root string) {
	const n = 128
	var parent digest.Digest
	for i := range n {
		chainID := id(fmt.Sprint("layer", i))
		createLayer(t, s, chainID, parent, layer(t, file{name: fmt.Sprintf("f%03d", i), data: fmt.Sprint(i)}))
		parent = chainID
	}
	target := mount(t, s, "c", parent)
	for i := range n {
		name := fmt.Sprintf("f%03d", i)
		if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != fmt.Sprint(i) {
			t.Fatalf("%s = %q, %v", name, b, err)
		}
	}
}

// testSpares checks that the writable snapshots made ahead (MakeSpares) or
// kept from removed ones are what Prepare would have made: empty, distinct,
// and never holding what a removed container left.
func testSpares(t *testing.T, s snapshot.Snapshotter, root string) {
	ctx := context.Background()
	base := id("spares-base")
	createLayer(t, s, base, "", layer(t, file{name: "etc/"}, file{name: "etc/os-release", data: "berth"}))
	if err := s.MakeSpares(ctx); err != nil {
		t.Fatalf("MakeSpares: %v", err)
	}
	if err := s.MakeSpares(ctx); err != nil {
		t.Fatalf("MakeSpares again: %v", err)
	}
	// A container that changes nothing, one that changes its root
	// directory, one that adds, one that deletes, one mounted volatile
	// (overlayfs leaves work/incompat/volatile behind): removed, then as
	// many new ones, which must each see the base layer and nothing else.
	changes := []func(root string) error{
		func(string) error { return nil },
		func(root string) error { return os.Chmod(root, 0o700) },
		func(root string) error { return os.WriteFile(filepath.Join(root, "left"), []byte("x"), 0o644) },
		func(root string) error { return os.Remove(filepath.Join(root, "etc/os-release")) },
		func(root string) error { return unix.Setxattr(root, "user.left", []byte("x"), 0) },
	}
	for round := range 2 {
		for i, change := range changes {
			key := fmt.Sprintf("c%d-%d", round, i)
			mounts, err := s.Prepare(ctx, key, base)
			if err != nil {
				t.Fatal(err)
			}
			if upper, err := s.UpperDir(ctx, key); err != nil {
				t.Fatal(err)
			} else if s.Driver() == "overlay" {
				if names := dirNames(t, upper); len(names) != 0 {
					t.Errorf("round %d: new snapshot %s has %v in its upper directory", round, key, names)
				}
			}
			if round == 1 && i == 0 && len(mounts) == 1 && mounts[0].Type == "overlay" {
				mounts[0].Options = append(slices.Clone(mounts[0].Options), "volatile")
			}
			target := t.TempDir()
			if err := snapshot.MountAll(mounts, target); err != nil {
				t.Fatalf("mount %s: %v", key, err)
			}
			var st unix.Stat_t
			if err := unix.Stat(target, &st); err != nil || st.Mode&0o777 != 0o755 {
				t.Errorf("round %d: root of %s has mode %o, %v; want 755", round, key, st.Mode&0o777, err)
			}
			if names := dirNames(t, target); !slices.Equal(names, []string{"etc"}) {
				t.Errorf("round %d: root of %s holds %v, want [etc]", round, key, names)
			}
			if n, err := unix.Llistxattr(target, make([]byte, 256)); err == nil && n > 0 {
				b := make([]byte, n)
				unix.Llistxattr(target, b)
				if strings.Contains(string(b), "user.left") {
					t.Errorf("round %d: root of %s has the xattr a removed container set", round, key)
				}
			}
			if b, err := os.ReadFile(filepath.Join(target, "etc/os-release")); err != nil || string(b) != "berth" {
				t.Errorf("round %d: etc/os-release of %s = %q, %v", round, key, b, err)
			}
			if err := change(target); err != nil {
				t.Fatal(err)
			}
			if err := snapshot.Unmount(target); err != nil {
				t.Fatal(err)
			}
			if err := s.Remove(ctx, key); err != nil {
				t.Fatalf("Remove %s: %v", key, err)
			}
		}
	}

	// Prepares at once take distinct snapshots.
	if err := s.MakeSpares(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 8
	uppers := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("at-once-%d", i)
			if _, err := s.Prepare(ctx, key, base); err != nil {
				t.Error(err)
				return
			}
			uppers[i], _ = s.UpperDir(ctx, key)
		})
	}
	wg.Wait()
	slices.Sort(uppers)
	if len(slices.Compact(slices.Clone(uppers))) != n {
		t.Errorf("%d Prepares at once share upper directories: %v", n, uppers)
	}
	for _, u := range uppers {
		if err := os.WriteFile(filepath.Join(u, "mine"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if names := dirNames(t, u); !slices.Equal(names, []string{"mine"}) && s.Driver() == "overlay" {
			t.Errorf("upper %s holds %v, want [mine]", u, names)
		}
	}
	actives, err := s.Actives(ctx)
	if err != nil || len(actives) != n {
		t.Errorf("Actives = %d snapshots, %v; want %d", len(actives), err, n)
	}
	for i := range n {
		if err := s.Remove(ctx, fmt.Sprintf("at-once-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RemoveLayer(ctx, base); err != nil {
		t.Errorf("RemoveLayer with only spares left: %v", err)
	}
	if m := mountsUnder(t, root); len(m) != 0 {
		t.Errorf("mounts left under the store: %v", m)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
