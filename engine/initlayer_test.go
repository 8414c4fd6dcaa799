package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/image"
)

// tarOf returns a tar stream of entries: directories end in a slash.
func tarOf(t *testing.T, entries ...string) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range entries {
		h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(1600000000, 0)}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o750
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

// TestInitLayer: containers of an image without /etc/hosts, /etc/hostname
// or /etc/resolv.conf share one init layer holding them (so that no
// container makes them in its writable layer), with /etc as the image has
// it; an image with all three, or on the native driver, gets none; the
// collection removes an init layer no container uses.
func TestInitLayer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []string
		want    []string // in the init layer; none: no init layer
	}{
		{"no etc", []string{"bin/", "bin/sh"}, []string{"etc/", "etc/hostname", "etc/hosts", "etc/resolv.conf"}},
		{"etc without files", []string{"etc/", "etc/passwd"}, []string{"etc/", "etc/hostname", "etc/hosts", "etc/resolv.conf"}},
		{"one file missing", []string{"etc/", "etc/hosts", "etc/hostname"}, []string{"etc/", "etc/resolv.conf"}},
		{"all there", []string{"etc/", "etc/hosts", "etc/hostname", "etc/resolv.conf"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEngine(t)
			id, err := e.Import(ctx, tarOf(t, tc.entries...), ImportOptions{Ref: "img", Source: "test"})
			if err != nil {
				t.Fatal(err)
			}
			db, err := e.images.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			chains := image.ChainIDs(db.Images[id].DiffIDs)
			top := chains[len(chains)-1]
			var parents []string
			for _, name := range []string{"a", "b"} {
				if _, err := e.CreateContainer(ctx, CreateOptions{Name: name, Image: "img", Cmd: []string{"true"}}); err != nil {
					t.Fatal(err)
				}
			}
			actives, err := e.snaps.Actives(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range actives {
				parents = append(parents, a.Parent.String())
			}
			if len(parents) != 2 || parents[0] != parents[1] {
				t.Fatalf("the two containers' layers are on %v, want one shared parent", parents)
			}
			parent := actives[0].Parent
			if tc.want == nil {
				if parent != top {
					t.Fatalf("containers are on %s, want the image's top layer %s (no init layer)", parent, top)
				}
				return
			}
			info, err := e.snaps.Stat(ctx, parent)
			if err != nil || info.Parent != top {
				t.Fatalf("containers are on %s (%+v, %v), want an init layer on the image's top layer %s", parent, info, err, top)
			}
			dir := filepath.Join(e.root, "snapshots", "overlay", "layers", parent.Encoded(), "fs")
			var got []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if rel, _ := filepath.Rel(dir, p); rel != "." {
					if d.IsDir() {
						rel += "/"
					}
					got = append(got, rel)
				}
				return nil
			})
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("init layer holds %v, want %v", got, tc.want)
			}
			etc, err := os.Stat(filepath.Join(dir, "etc"))
			if err != nil {
				t.Fatal(err)
			}
			wantMode := os.FileMode(0o755)
			if strings.HasPrefix(tc.entries[0], "etc/") {
				wantMode = 0o750
				if !etc.ModTime().Equal(time.Unix(1600000000, 0)) {
					t.Errorf("init layer's /etc has mtime %v, want the image's", etc.ModTime())
				}
			}
			if etc.Mode().Perm() != wantMode {
				t.Errorf("init layer's /etc has mode %v, want %v", etc.Mode().Perm(), wantMode)
			}
			// Used, it survives a collection; unused, it goes.
			if _, err := e.gc(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := e.snaps.Stat(ctx, parent); err != nil {
				t.Fatalf("init layer in use removed by a collection: %v", err)
			}
			for _, name := range []string{"a", "b"} {
				if err := e.RemoveContainer(ctx, name, RemoveOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.gc(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := e.snaps.Stat(ctx, parent); err == nil {
				t.Error("unused init layer kept by a collection")
			}
			if _, err := e.snaps.Stat(ctx, top); err != nil {
				t.Errorf("the image's layer went with its init layer: %v", err)
			}
		})
	}
}
