package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// entry is one tar entry for a test layer.
type entry struct {
	hdr  tar.Header
	data string
}

func reg(name, data string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data: data}
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

// layer returns the tar stream of entries.
func layer(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if hdr.ModTime.IsZero() {
			hdr.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func apply(t testing.TB, dir string, b []byte, mode WhiteoutMode) (ApplyResult, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(b), ApplyOptions{Whiteouts: mode})
}

// sandbox returns a layer directory and a sibling directory outside it
// that no layer may touch.
func sandbox(t *testing.T) (layerDir, outside string) {
	t.Helper()
	base := t.TempDir()
	layerDir, outside = filepath.Join(base, "layer"), filepath.Join(base, "outside")
	for _, d := range []string{layerDir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return layerDir, outside
}

func TestApplyRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		lower   func(t *testing.T, layerDir, outside string) // what a lower layer left
		entries []entry
		wantMsg string
	}{
		{name: "dotdot", entries: []entry{reg("../x", "x")}, wantMsg: `layer entry "../x" escapes the layer root`},
		{name: "dotdot inside", entries: []entry{reg("a/../../x", "x")}, wantMsg: `escapes the layer root`},
		{name: "absolute", entries: []entry{reg("/etc/passwd", "x")}, wantMsg: `layer entry "/etc/passwd" is an absolute path`},
		{
			name:    "relative symlink then write through it",
			entries: []entry{symlink("evil", "../outside"), reg("evil/x", "x")},
			wantMsg: `layer entry "evil/x" escapes the layer root through a symlink`,
		},
		{
			name:    "absolute symlink then write through it",
			entries: []entry{symlink("evil", "/"), reg("evil/tmp/x", "x")},
			wantMsg: `layer entry "evil/tmp/x" escapes the layer root through a symlink`,
		},
		{
			name:    "symlink then directory through it",
			entries: []entry{symlink("evil", "../outside"), dir("evil/sub/")},
			wantMsg: `layer entry "evil/sub/" escapes the layer root`,
		},
		{
			name: "symlink from a lower layer",
			lower: func(t *testing.T, layerDir, outside string) {
				if err := os.Symlink(outside, filepath.Join(layerDir, "evil")); err != nil {
					t.Fatal(err)
				}
			},
			entries: []entry{reg("evil/x", "x")},
			wantMsg: `layer entry "evil/x" escapes the layer root through a symlink`,
		},
		{name: "hardlink dotdot", entries: []entry{hardlink("l", "../outside/secret")}, wantMsg: `hardlink target "../outside/secret" escapes the layer root`},
		{name: "hardlink absolute", entries: []entry{hardlink("l", "/etc/passwd")}, wantMsg: `hardlink target "/etc/passwd" is an absolute path`},
		{
			name:    "hardlink through symlink",
			entries: []entry{symlink("s", "../outside"), hardlink("l", "s/secret")},
			wantMsg: `hardlink target "s/secret" escapes the layer root through a symlink`,
		},
		{name: "hardlink to missing target", entries: []entry{hardlink("l", "nothing")}, wantMsg: `hardlink target "nothing" does not exist`},
		{name: "whiteout through symlink", entries: []entry{symlink("s", "../outside"), reg("s/.wh.secret", "")}, wantMsg: `escapes the layer root through a symlink`},
	}
	for _, tt := range tests {
		for _, mode := range []WhiteoutMode{WhiteoutOverlay, WhiteoutDelete} {
			t.Run(tt.name+"/"+mode.String(), func(t *testing.T) {
				layerDir, outside := sandbox(t)
				if tt.lower != nil {
					tt.lower(t, layerDir, outside)
				}
				_, err := apply(t, layerDir, layer(t, tt.entries...), mode)
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Apply = %v, want an invalid argument error", err)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("Apply = %q, want it to contain %q", err, tt.wantMsg)
				}
				names, err := os.ReadDir(outside)
				if err != nil {
					t.Fatal(err)
				}
				if len(names) != 1 || names[0].Name() != "secret" {
					t.Errorf("outside directory changed: %v", names)
				}
				if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
					t.Errorf("outside/secret changed: %q", b)
				}
			})
		}
	}
}

func TestApplyInRootSymlinks(t *testing.T) {
	// Symlinks that stay inside the layer are followed for later entries.
	layerDir, _ := sandbox(t)
	_, err := apply(t, layerDir, layer(t,
		dir("usr/"), dir("usr/lib/"), symlink("lib", "usr/lib"),
		reg("lib/libc.so", "libc"), symlink("up", "usr/../usr"), reg("up/f", "f"),
	), WhiteoutOverlay)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"usr/lib/libc.so": "libc", "usr/f": "f"} {
		if b, err := os.ReadFile(filepath.Join(layerDir, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}

func TestApplyCorrupt(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 64<<10)
	raw := layer(t, dir("d/"), reg("d/big", big), reg("d/small", "x"))
	gz := gzipped(t, raw)
	tests := []struct {
		name string
		data []byte
	}{
		{"truncated gzip", gz[:len(gz)/2]},
		{"gzip without trailer", gz[:len(gz)-4]},
		{"truncated tar", raw[:700]},
		{"truncated tar inside data", raw[:len(raw)/2]},
		{"garbage header", append(bytes.Repeat([]byte{'x'}, 512), raw...)},
		{"corrupt gzip", append(append([]byte{}, gz[:20]...), bytes.Repeat([]byte{0xff}, 200)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := apply(t, t.TempDir(), tt.data, WhiteoutOverlay)
			if !errors.Is(err, errdefs.ErrDataCorrupt) {
				t.Fatalf("Apply = %v, want a data corrupt error", err)
			}
		})
	}
}

type failingReader struct{ r io.Reader }

var errNetwork = errors.New("connection reset")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errNetwork
	}
	return n, err
}

func TestApplySourceErrorIsNotCorrupt(t *testing.T) {
	raw := layer(t, reg("f", strings.Repeat("x", 100000)))
	gz := gzipped(t, raw)
	_, err := Apply(context.Background(), t.TempDir(), &failingReader{bytes.NewReader(gz[:len(gz)/2])}, ApplyOptions{})
	if !errors.Is(err, errNetwork) || errors.Is(err, errdefs.ErrDataCorrupt) {
		t.Fatalf("Apply = %v, want the source's own error", err)
	}
}

func TestApplyCompressions(t *testing.T) {
	raw := layer(t, dir("etc/"), reg("etc/hostname", "berth\n"), reg("big", strings.Repeat("abc", 300000)))
	var zs bytes.Buffer
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	tests := []struct {
		name string
		data []byte
		want Compression
	}{
		{"uncompressed", raw, Uncompressed},
		{"gzip", gzipped(t, raw), Gzip},
		{"zstd", zs.Bytes(), Zstd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, c, err := DecompressStream(bytes.NewReader(tt.data))
			if err != nil || c != tt.want {
				t.Fatalf("DecompressStream = %v, %v; want %v", c, err, tt.want)
			}
			rc.Close()

			d := t.TempDir()
			src := bytes.NewReader(tt.data)
			res, err := Apply(context.Background(), d, src, ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if want := digest.FromBytes(raw); res.DiffID != want || res.Size != int64(len(raw)) {
				t.Errorf("Apply = %v %d, want %v %d", res.DiffID, res.Size, want, len(raw))
			}
			if src.Len() != 0 {
				t.Errorf("Apply left %d bytes of the stream unread", src.Len())
			}
			if b, _ := os.ReadFile(filepath.Join(d, "etc/hostname")); string(b) != "berth\n" {
				t.Errorf("etc/hostname = %q", b)
			}
		})
	}
}

func TestApplySparse(t *testing.T) {
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("data"), 1024)
	f.WriteAt(data, 0)
	f.WriteAt(data, 64<<20)
	f.WriteAt(data, 200<<20)
	f.Truncate(300 << 20) // ends in a hole
	f.Close()
	var buf bytes.Buffer
	if err := WriteTar(context.Background(), &buf, src); err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	if _, err := apply(t, d, buf.Bytes(), WhiteoutOverlay); err != nil {
		t.Fatal(err)
	}
	var want, got unix.Stat_t
	unix.Stat(filepath.Join(src, "sparse"), &want)
	unix.Stat(filepath.Join(d, "sparse"), &got)
	if got.Size != want.Size {
		t.Errorf("size = %d, want %d", got.Size, want.Size)
	}
	if got.Blocks > want.Blocks {
		t.Errorf("unpacked file uses %d blocks, the original %d: holes were filled", got.Blocks, want.Blocks)
	}
	g, _ := os.ReadFile(filepath.Join(d, "sparse"))
	w, _ := os.ReadFile(filepath.Join(src, "sparse"))
	if !bytes.Equal(g, w) {
		t.Error("content differs")
	}
}

func TestApplyXattrs(t *testing.T) {
	e := reg("f", "x")
	e.hdr.PAXRecords = map[string]string{
		"SCHILY.xattr.user.berth":             "hello",
		"SCHILY.xattr.security.capability":    string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
		"SCHILY.xattr.trusted.overlay.opaque": "y", // not a layer's to set
	}
	e.hdr.Mode = 0o4755
	d := dir("d/")
	d.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.berth": "dir"}
	layerDir := t.TempDir()
	if _, err := apply(t, layerDir, layer(t, e, d), WhiteoutOverlay); err != nil {
		t.Fatal(err)
	}
	x, err := listXattrs(filepath.Join(layerDir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if x["user.berth"] != "hello" || len(x["security.capability"]) != 20 || x["trusted.overlay.opaque"] != "" {
		t.Errorf("xattrs of f = %q", x)
	}
	if x, _ := listXattrs(filepath.Join(layerDir, "d")); x["trusted.berth"] != "dir" {
		t.Errorf("xattrs of d = %q", x)
	}
	fi, _ := os.Stat(filepath.Join(layerDir, "f"))
	if fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("mode of f = %v, want setuid", fi.Mode())
	}
}

func TestApplyWhiteouts(t *testing.T) {
	lower := func(t *testing.T, d string) {
		for _, p := range []string{"a/x", "a/keep", "b/y", "b/sub/old"} {
			os.MkdirAll(filepath.Join(d, filepath.Dir(p)), 0o755)
			if err := os.WriteFile(filepath.Join(d, p), []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries := []entry{
		dir("a/"), reg("a/.wh.x", ""),
		dir("b/"), reg("b/z", "z"), dir("b/sub/"), reg("b/sub/new", "new"), reg("b/.wh..wh..opq", ""),
		reg("c/n", "n"), reg("c/.wh.n", ""), // a whiteout hides only lower layers
	}

	t.Run("delete", func(t *testing.T) {
		d := t.TempDir()
		lower(t, d)
		if _, err := apply(t, d, layer(t, entries...), WhiteoutDelete); err != nil {
			t.Fatal(err)
		}
		want := []string{"a/", "a/keep", "b/", "b/sub/", "b/sub/new", "b/z", "c/", "c/n"}
		if got := tree(t, d); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("tree = %v, want %v", got, want)
		}
	})
	t.Run("overlay", func(t *testing.T) {
		d := t.TempDir()
		if _, err := apply(t, d, layer(t, entries...), WhiteoutOverlay); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(d, "a/x"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("a/x is not an overlay whiteout: %v mode %o", err, st.Mode)
		}
		if x, _ := listXattrs(filepath.Join(d, "b")); x[overlayOpaqueXattr] != "y" {
			t.Errorf("b is not opaque: %q", x)
		}
		if b, _ := os.ReadFile(filepath.Join(d, "c/n")); string(b) != "n" {
			t.Errorf("c/n = %q, want it kept", b)
		}
	})
	t.Run("none", func(t *testing.T) {
		d := t.TempDir()
		lower(t, d)
		if _, err := apply(t, d, layer(t, entries...), WhiteoutNone); err != nil {
			t.Fatal(err)
		}
		want := []string{"a/", "a/.wh.x", "a/keep", "a/x", "b/", "b/.wh..wh..opq", "b/sub/", "b/sub/new", "b/sub/old", "b/y", "b/z", "c/", "c/.wh.n", "c/n"}
		if got := tree(t, d); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("tree = %v, want %v (.wh. names as plain files)", got, want)
		}
	})
}

// tree lists the paths under d, directories with a trailing slash.
func tree(t *testing.T, d string) []string {
	t.Helper()
	var out []string
	filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p == d {
			return nil
		}
		rel, _ := filepath.Rel(d, p)
		if fi.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	return out
}
