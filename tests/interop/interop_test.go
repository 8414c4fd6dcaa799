package interop

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// image is the part of `image inspect` output, Docker's shape and podman's
// alike, that the tests compare.
type image struct {
	ID       string `json:"Id"`
	RepoTags []string
	Config   struct {
		Cmd        []string
		Entrypoint []string
		Env        []string
	}
	RootFS struct {
		Type   string
		Layers []string
	}
}

// decodeInspect parses the JSON array that `image inspect` prints for one
// image.
func decodeInspect(t *testing.T, who, out string) image {
	t.Helper()
	var imgs []image
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		t.Fatalf("%s image inspect: decoding %q: %v", who, out, err)
	}
	if len(imgs) != 1 {
		t.Fatalf("%s image inspect: got %d images, want 1:\n%s", who, len(imgs), out)
	}
	img := imgs[0]
	// Podman prints the bare hex ID, Docker (and berth) "sha256:" and hex.
	img.ID = strings.TrimPrefix(img.ID, "sha256:")
	return img
}

func berthInspect(t *testing.T, b *testutil.Berth, ref string) image {
	t.Helper()
	return decodeInspect(t, "berth", b.MustRun("image", "inspect", ref).Stdout)
}

func podmanInspect(t *testing.T, p *testutil.Podman, ref string) image {
	t.Helper()
	return decodeInspect(t, "podman", p.MustRun("image", "inspect", ref).Stdout)
}

// compareImages reports every way got, as berth sees an image, differs from
// want, as podman sees it. Both name the image name.
func compareImages(t *testing.T, name string, got, want image) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("%s: image ID (config digest) is %s in berth, %s in podman", name, got.ID, want.ID)
	}
	if !slices.Contains(got.RepoTags, name) {
		t.Errorf("%s: berth's RepoTags %q lack it (podman's: %q)", name, got.RepoTags, want.RepoTags)
	}
	if !slices.Equal(got.Config.Cmd, want.Config.Cmd) {
		t.Errorf("%s: Cmd is %q in berth, %q in podman", name, got.Config.Cmd, want.Config.Cmd)
	}
	if !slices.Equal(got.Config.Entrypoint, want.Config.Entrypoint) {
		t.Errorf("%s: Entrypoint is %q in berth, %q in podman", name, got.Config.Entrypoint, want.Config.Entrypoint)
	}
	if !slices.Equal(got.Config.Env, want.Config.Env) {
		t.Errorf("%s: Env is %q in berth, %q in podman", name, got.Config.Env, want.Config.Env)
	}
	if !slices.Equal(got.RootFS.Layers, want.RootFS.Layers) {
		t.Errorf("%s: layer diffIDs are\n%q in berth,\n%q in podman", name, got.RootFS.Layers, want.RootFS.Layers)
	}
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Names of the images the tests make. They are fully qualified, in
// localhost/, so that berth (as Docker) and podman print them alike.
const (
	berthBusybox  = "localhost/interop/busybox:berth"
	berthHello    = "localhost/interop/hello:berth"
	podmanBusybox = "localhost/interop/busybox:podman"
	podmanLayers  = "localhost/interop/layers:podman"
	skopeoName    = "localhost/interop/layers:skopeo"
)

func TestBerthSaveLoadsInPodman(t *testing.T) {
	p := testutil.NewPodman(t, "runc")
	b := testutil.NewBerth(t)
	imgs := testutil.Images(t)

	b.MustRun("import", "--change", `CMD ["sh"]`, imgs.Busybox, berthBusybox)
	b.MustRun("import", "--change", `ENTRYPOINT ["/hello"]`, imgs.Hello, berthHello)
	archive := filepath.Join(t.TempDir(), "berth-save.tar")
	b.MustRun("save", "-o", archive, berthBusybox, berthHello)

	p.MustRun("load", "-i", archive)
	for name, rootfs := range map[string]string{berthBusybox: imgs.Busybox, berthHello: imgs.Hello} {
		got := berthInspect(t, b, name)
		// An uncompressed rootfs tarball is imported as is, so the
		// layer's diffID is the tarball's digest, as in Docker and podman.
		if want := []string{fileDigest(t, rootfs)}; !slices.Equal(got.RootFS.Layers, want) {
			t.Errorf("%s: berth's layer diffIDs are %q, want the tarball's digest %q", name, got.RootFS.Layers, want)
		}
		want := podmanInspect(t, p, name)
		if !slices.Contains(want.RepoTags, name) {
			t.Errorf("%s: podman's RepoTags %q lack it after loading berth's archive", name, want.RepoTags)
		}
		compareImages(t, name, got, want)
	}

	res := p.MustRun("run", "--rm", "--network", "none", berthBusybox, "echo", "hi")
	if res.Stdout != "hi\n" {
		t.Errorf("podman run %s echo hi printed %q, want %q", berthBusybox, res.Stdout, "hi\n")
	}
	res = p.MustRun("run", "--rm", "--network", "none", berthHello, "a", "b c")
	if want := testutil.HelloGreeting + "\na\nb c\n"; res.Stdout != want {
		t.Errorf("podman run %s a 'b c' printed %q, want %q", berthHello, res.Stdout, want)
	}
}

// podmanImages makes, in p, a one-layer busybox image with a command and an
// environment, and a two-layer image built on it.
func podmanImages(t *testing.T, p *testutil.Podman) {
	t.Helper()
	imgs := testutil.Images(t)
	p.MustRun("import", "-q", "--change", `CMD ["sh"]`, "--change", "ENV FOO=bar", imgs.Busybox, podmanBusybox)
	ctx := t.TempDir()
	files := map[string]string{
		"Containerfile": "FROM " + podmanBusybox + "\n" +
			"COPY file /data/file\n" +
			"ENV BAR=baz\n" +
			`ENTRYPOINT ["cat"]` + "\n" +
			`CMD ["/data/file"]` + "\n",
		"file": "layer two\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.MustRun("build", "-q", "--network", "none", "-t", podmanLayers, ctx)
}

// checkPodmanImages checks that podman made the images podmanImages asks
// for, so that comparisons with them are not vacuous.
func checkPodmanImages(t *testing.T, p *testutil.Podman) {
	t.Helper()
	bb := podmanInspect(t, p, podmanBusybox)
	if len(bb.RootFS.Layers) != 1 || !slices.Equal(bb.Config.Cmd, []string{"sh"}) || !slices.Contains(bb.Config.Env, "FOO=bar") {
		t.Fatalf("podman made %s with layers %q, Cmd %q, Env %q", podmanBusybox, bb.RootFS.Layers, bb.Config.Cmd, bb.Config.Env)
	}
	l := podmanInspect(t, p, podmanLayers)
	if len(l.RootFS.Layers) != 2 || !slices.Equal(l.Config.Entrypoint, []string{"cat"}) || !slices.Contains(l.Config.Env, "BAR=baz") {
		t.Fatalf("podman made %s with layers %q, Entrypoint %q, Env %q", podmanLayers, l.RootFS.Layers, l.Config.Entrypoint, l.Config.Env)
	}
}

func TestPodmanSaveLoadsInBerth(t *testing.T) {
	p := testutil.NewPodman(t, "runc")
	podmanImages(t, p)
	checkPodmanImages(t, p)

	for _, format := range []string{"docker-archive", "oci-archive"} {
		t.Run(format, func(t *testing.T) {
			b := testutil.NewBerth(t)
			for _, name := range []string{podmanBusybox, podmanLayers} {
				archive := filepath.Join(t.TempDir(), "podman-save.tar")
				p.MustRun("save", "-q", "--format", format, "-o", archive, name)
				res := b.MustRun("load", "-i", archive)
				if want := "Loaded image: " + name; !strings.Contains(res.Stdout, want) {
					t.Errorf("berth load -i (%s of %s) printed %q, want a line %q", format, name, res.Stdout, want)
				}
				compareImages(t, name, berthInspect(t, b, name), podmanInspect(t, p, name))
			}
		})
	}
}

func TestSkopeoOCIArchiveLoadsInBerth(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed (apt-get install skopeo)")
	}
	p := testutil.NewPodman(t, "runc")
	podmanImages(t, p)
	checkPodmanImages(t, p)
	want := podmanInspect(t, p, podmanLayers)
	src := filepath.Join(t.TempDir(), "podman-save.tar")
	p.MustRun("save", "-q", "--format", "docker-archive", "-o", src, podmanLayers)

	for _, compression := range []string{"none", "gzip", "zstd"} {
		t.Run(compression, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "skopeo.tar")
			args := []string{"copy", "--quiet"}
			if compression != "none" {
				args = append(args, "--dest-compress", "--dest-compress-format", compression)
			}
			args = append(args, "docker-archive:"+src, "oci-archive:"+dst+":"+skopeoName)
			cmd := exec.Command("skopeo", args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
			}

			b := testutil.NewBerth(t)
			res := b.MustRun("load", "-i", dst)
			if w := "Loaded image: " + skopeoName; !strings.Contains(res.Stdout, w) {
				t.Errorf("berth load -i (skopeo oci-archive, %s) printed %q, want a line %q", compression, res.Stdout, w)
			}
			compareImages(t, skopeoName, berthInspect(t, b, skopeoName), want)
		})
	}
}
