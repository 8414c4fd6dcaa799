package cli_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var drivers = []string{"overlay", "native"}

// newBerth returns a berth with its own store on the given storage driver.
func newBerth(t *testing.T, driver string) *testutil.Berth {
	b := testutil.NewBerth(t)
	b.Env = append(b.Env, "BERTH_STORAGE_DRIVER="+driver)
	return b
}

type inspected struct {
	ID          string `json:"Id"`
	RepoTags    []string
	RepoDigests []string
	Created     string
	Config      struct {
		Cmd []string
		Env []string
	}
	Architecture, Os string
	Size             int64
	RootFS           struct {
		Type   string
		Layers []string
	}
	GraphDriver struct{ Name string }
}

func inspect(t *testing.T, b *testutil.Berth, name string) inspected {
	t.Helper()
	var out []inspected
	res := b.MustRun("image", "inspect", name)
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("inspect %s: %v\n%s", name, err, res.Stdout)
	}
	return out[0]
}

// The seed's image lifecycle on a local image: import, list, inspect, tag,
// save, remove, load back; the image ID and layers survive the round trip.
func TestImageLifecycle(t *testing.T) {
	imgs := testutil.Images(t)
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			b := newBerth(t, driver)
			id := strings.TrimSpace(b.MustRun("import", "--change", `CMD ["sh"]`, "-c", "ENV A=1", imgs.Busybox, "busybox").Stdout)
			if digest.Digest(id).Validate() != nil {
				t.Fatalf("import printed %q, want an image ID", id)
			}
			ii := inspect(t, b, "busybox")
			if ii.ID != id || !slices.Equal(ii.RepoTags, []string{"busybox:latest"}) || !slices.Equal(ii.Config.Cmd, []string{"sh"}) ||
				!slices.Equal(ii.Config.Env, []string{"A=1"}) || ii.Os != "linux" || ii.RootFS.Type != "layers" || len(ii.RootFS.Layers) != 1 ||
				ii.GraphDriver.Name != driver || ii.Size == 0 {
				t.Fatalf("inspect = %+v", ii)
			}
			// The layer is unpacked: busybox is in the snapshot.
			b.MustRun("tag", "busybox", "example.com:5000/team/app:v1")
			out := b.MustRun("images").Stdout
			for _, want := range []string{"REPOSITORY", "busybox", "latest", "example.com:5000/team/app", "v1", id[7:19]} {
				if !strings.Contains(out, want) {
					t.Errorf("images lacks %q:\n%s", want, out)
				}
			}
			if q := strings.Fields(b.MustRun("images", "-q").Stdout); !slices.Equal(q, []string{id[7:19]}) {
				t.Errorf("images -q = %q", q)
			}
			got := b.MustRun("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "--filter", "reference=busybox").Stdout
			if got != "busybox:latest "+id[7:19]+"\n" {
				t.Errorf("images --format --filter = %q", got)
			}
			// Removing one of two names only untags.
			if out := b.MustRun("rmi", "example.com:5000/team/app:v1").Stdout; out != "Untagged: example.com:5000/team/app:v1\n" {
				t.Errorf("rmi of one name printed %q", out)
			}
			archive := filepath.Join(t.TempDir(), "busybox.tar")
			b.MustRun("save", "-o", archive, "busybox")
			out = b.MustRun("rmi", "busybox").Stdout
			if !strings.Contains(out, "Untagged: busybox:latest") || !strings.Contains(out, "Deleted: "+id) {
				t.Errorf("rmi printed %q", out)
			}
			// Nothing of the image is left: no blob, no layer.
			if n := countFiles(t, filepath.Join(b.Root, "content", "blobs")); n != 0 {
				t.Errorf("%d blobs left after rmi", n)
			}
			if out := b.MustRun("load", "-i", archive).Stdout; out != "Loaded image: busybox:latest\n" {
				t.Errorf("load printed %q", out)
			}
			if back := inspect(t, b, "busybox:latest"); back.ID != id || !slices.Equal(back.RootFS.Layers, ii.RootFS.Layers) {
				t.Errorf("after save and load: %+v, want ID %s layers %v", back, id, ii.RootFS.Layers)
			}
			hist := b.MustRun("history", "busybox").Stdout
			if !strings.Contains(hist, "berth import") || !strings.Contains(hist, id[7:19]) {
				t.Errorf("history:\n%s", hist)
			}
		})
	}
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// Two images sharing their base layer: removing one keeps the shared layer.
func TestSharedLayersSurviveRmi(t *testing.T) {
	imgs := testutil.Images(t)
	b := newBerth(t, "overlay")
	b.MustRun("import", imgs.Busybox, "one")
	archive := filepath.Join(t.TempDir(), "one.tar")
	b.MustRun("save", "-o", archive, "one")
	b.MustRun("tag", "one", "two")
	b.MustRun("rmi", "one")
	ii := inspect(t, b, "two")
	layers := filepath.Join(b.Root, "snapshots")
	before := testutil.StoreListing(t, layers)
	if !strings.Contains(before, strings.TrimPrefix(ii.RootFS.Layers[0], "sha256:")) && countFiles(t, layers) == 0 {
		t.Fatalf("layer of two gone after removing one:\n%s", before)
	}
	b.MustRun("rmi", "two")
	if n := countFiles(t, filepath.Join(b.Root, "content", "blobs")); n != 0 {
		t.Errorf("%d blobs left", n)
	}
}

// Bad input: a one-line error naming what was wrong, exit 125, and the
// store exactly as it was.
func TestBadInputChangesNothing(t *testing.T) {
	imgs := testutil.Images(t)
	dir := t.TempDir()
	b := newBerth(t, "overlay")
	b.MustRun("import", imgs.Busybox, "busybox")
	good := filepath.Join(dir, "good.tar")
	b.MustRun("save", "-o", good, "busybox")
	goodBytes, _ := os.ReadFile(good)

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	truncated := write("truncated.tar", goodBytes[:len(goodBytes)/2])
	escape := write("escape.tar", tarOf(t, []tarEntry{{name: "../../etc/evil", body: "x"}}))
	symEscape := write("symescape.tar", tarOf(t, []tarEntry{{name: "etc", link: "/etc", typ: tar.TypeSymlink}, {name: "etc/evil", body: "x"}}))
	corrupt := write("corrupt.tar", corruptBlob(t, goodBytes))
	notTar := write("not.tar", []byte("this is not a tar archive at all, just text\n"))

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"truncated archive", []string{"load", "-i", truncated}, "truncated"},
		{"not an archive", []string{"load", "-i", notTar}, "not an image archive"},
		{"digest mismatch", []string{"load", "-i", corrupt}, "digest"},
		{"path escape", []string{"import", escape, "evil"}, "escapes"},
		{"symlink escape", []string{"import", symEscape, "evil"}, "evil"},
		{"truncated import", []string{"import", truncated, "x"}, ""},
		{"unknown image", []string{"image", "inspect", "nosuch"}, "No such image: nosuch"},
		{"unknown image rmi", []string{"rmi", "nosuch:1.0"}, "No such image: nosuch:1.0"},
		{"malformed reference", []string{"tag", "busybox", "Bad/Name"}, "invalid reference format"},
		{"malformed reference import", []string{"import", imgs.Busybox, "a//b"}, "invalid reference format"},
		{"missing file", []string{"load", "-i", filepath.Join(dir, "nosuch.tar")}, "no such file"},
		{"bad change", []string{"import", "-c", "RUN rm -rf /", imgs.Busybox, "x"}, "not a valid change command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.StoreListing(t, b.Root)
			res := b.Run(tc.args...)
			if res.Code != 125 {
				t.Errorf("exit code %d, want 125\n%s", res.Code, res)
			}
			msg := strings.TrimSpace(res.Stderr)
			if strings.Count(msg, "\n") > 1 || !strings.HasPrefix(msg, "Error: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q: want one line with %q", msg, tc.want)
			}
			if after := testutil.StoreListing(t, b.Root); after != before {
				t.Errorf("store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

type tarEntry struct {
	name, body, link string
	typ              byte
}

func tarOf(t *testing.T, entries []tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: e.typ, Linkname: e.link}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		} else {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// corruptBlob rewrites a saved archive with one byte of its layer changed,
// so the layer no longer matches its digest.
func corruptBlob(t *testing.T, archive []byte) []byte {
	tr := tar.NewReader(bytes.NewReader(archive))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	flipped := false
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var body bytes.Buffer
		body.ReadFrom(tr)
		b := body.Bytes()
		if !flipped && strings.HasPrefix(h.Name, "blobs/") && len(b) > 100000 {
			b[len(b)/2] ^= 0xff
			flipped = true
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	if !flipped {
		t.Fatal("no layer blob to corrupt")
	}
	return out.Bytes()
}

// Many berth processes on one store at once: every import and load
// succeeds and the store ends consistent.
func TestConcurrentProcesses(t *testing.T) {
	imgs := testutil.Images(t)
	b := newBerth(t, "overlay")
	b.MustRun("import", imgs.Busybox, "base")
	archive := filepath.Join(t.TempDir(), "base.tar")
	b.MustRun("save", "-o", archive, "base")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				b.MustRun("import", imgs.Busybox, "imp"+string(rune('a'+i)))
			} else {
				b.MustRun("load", "-i", archive)
				b.MustRun("tag", "base", "tagged"+string(rune('a'+i)))
			}
		}()
	}
	wg.Wait()
	out := b.MustRun("images", "--format", "{{.Repository}}").Stdout
	for _, want := range []string{"impa", "impc", "impe", "impg", "taggedb", "taggedd", "taggedf", "taggedh", "base"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("images lacks %s:\n%s", want, out)
		}
	}
	// Removing everything leaves no blob behind.
	for _, n := range strings.Fields(out) {
		b.Run("rmi", "-f", n)
	}
	if n := countFiles(t, filepath.Join(b.Root, "content", "blobs")); n != 0 {
		t.Errorf("%d blobs left after removing every image", n)
	}
}

func TestSystemCommands(t *testing.T) {
	imgs := testutil.Images(t)
	b := newBerth(t, "overlay")
	b.MustRun("import", imgs.Hello, "hello")
	b.MustRun("import", imgs.Busybox) // dangling
	info := b.MustRun("info").Stdout
	for _, want := range []string{"Images: 2", "Storage Driver: overlay", "Cgroup Version: ", "Kernel Version: ", "Berth Root Dir: " + b.Root} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}
	df := b.MustRun("system", "df").Stdout
	if !strings.HasPrefix(df, "TYPE") || !strings.Contains(df, "Images          2") {
		t.Errorf("system df:\n%s", df)
	}
	if dangling := b.MustRun("images", "-q", "--filter", "dangling=true").Stdout; strings.Count(dangling, "\n") != 1 {
		t.Errorf("dangling images: %q", dangling)
	}
	out := b.MustRun("image", "prune", "-f").Stdout
	if !strings.Contains(out, "Deleted: sha256:") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("image prune printed %q", out)
	}
	if n := strings.Count(b.MustRun("images", "-q").Stdout, "\n"); n != 1 {
		t.Errorf("%d images after prune, want 1", n)
	}
	b.MustRun("system", "prune", "-a", "-f")
	if out := b.MustRun("images", "-q").Stdout; out != "" {
		t.Errorf("images after system prune -a: %q", out)
	}
}
