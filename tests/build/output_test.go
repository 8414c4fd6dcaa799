package build

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const outputDockerfile = `FROM busybox
WORKDIR /app
COPY a.txt ./
RUN echo made > made.txt && chown 65534:65534 made.txt
CMD ["cat", "made.txt"]
`

// tarNames lists a tar archive's entry names (and, for each, its owner).
func tarNames(t *testing.T, r io.Reader) map[string]int {
	t.Helper()
	out := map[string]int{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = h.Uid
	}
}

// readTarFile returns the content of one entry of the tar at p.
func readTarFile(t *testing.T, p, name string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s: %v", p, name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// TestOutput: --output local, tar, docker and oci, and -o DIR / -o -.
func TestOutput(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{"Dockerfile": outputDockerfile, "a.txt": "a\n"})

	// local: the final stage's files, owners kept; no image is tagged.
	out := filepath.Join(t.TempDir(), "out")
	e.build("--output", "type=local,dest="+out, "-t", "nottagged:v1", dir)
	if b, err := os.ReadFile(filepath.Join(out, "app", "made.txt")); err != nil || string(b) != "made\n" {
		t.Fatalf("local output: made.txt: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(out, "bin", "busybox")); err != nil {
		t.Fatalf("local output lacks the base's files: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(out, "app", "made.txt"), &st); err != nil || st.Uid != 65534 {
		t.Fatalf("local output: made.txt owner %d, want 65534 (%v)", st.Uid, err)
	}
	if res := e.Run("image", "inspect", "nottagged:v1"); res.Code == 0 {
		t.Fatal("--output type=local tagged an image")
	}
	// -o DIR is the same.
	out2 := filepath.Join(t.TempDir(), "out2")
	e.build("-o", out2, dir)
	if b, err := os.ReadFile(filepath.Join(out2, "app", "a.txt")); err != nil || string(b) != "a\n" {
		t.Fatalf("-o DIR: a.txt: %q, %v", b, err)
	}

	// tar to a file, and to stdout with -o -.
	tarPath := filepath.Join(t.TempDir(), "fs.tar")
	e.build("--output", "type=tar,dest="+tarPath, dir)
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, f)
	f.Close()
	if uid, ok := names["app/made.txt"]; !ok || uid != 65534 {
		t.Fatalf("tar output: app/made.txt %v (uid %d); have %d entries", ok, uid, len(names))
	}
	if _, ok := names["bin/busybox"]; !ok {
		t.Fatal("tar output lacks bin/busybox")
	}
	res := e.MustRun("build", "-q", "-o", "-", dir)
	if names := tarNames(t, strings.NewReader(res.Stdout)); !slicesHas(names, "app/a.txt", "app/made.txt") {
		t.Fatalf("-o - wrote no tar of the files to stdout (%d bytes)", len(res.Stdout))
	}

	// docker: berth save's archive, which load reads back.
	dockerPath := filepath.Join(t.TempDir(), "docker.tar")
	e.build("--output", "type=docker,dest="+dockerPath, "-t", "exported:docker", dir)
	var manifest []struct{ RepoTags []string }
	if err := json.Unmarshal(readTarFile(t, dockerPath, "manifest.json"), &manifest); err != nil || len(manifest) != 1 || !slices.Contains(manifest[0].RepoTags, "exported:docker") {
		t.Fatalf("docker output: manifest.json %+v (%v)", manifest, err)
	}
	e.MustRun("rmi", "exported:docker")
	e.MustRun("load", "-i", dockerPath)
	if got := e.sh("exported:docker", "cat /app/made.txt"); got != "made" {
		t.Fatalf("loaded docker output: made.txt %q", got)
	}

	// oci: an OCI image layout, its index naming the tag, every blob the
	// manifest names present.
	ociPath := filepath.Join(t.TempDir(), "oci.tar")
	e.build("--output", "type=oci,dest="+ociPath, "-t", "exported:oci", dir)
	if lay := string(readTarFile(t, ociPath, "oci-layout")); !strings.Contains(lay, `"imageLayoutVersion":"1.0.0"`) {
		t.Fatalf("oci output: oci-layout %q", lay)
	}
	var idx struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(readTarFile(t, ociPath, "index.json"), &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("oci output: index.json %+v (%v)", idx, err)
	}
	if ref := idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; ref != "oci" {
		t.Fatalf("oci output: ref.name %q, want oci", ref)
	}
	blob := func(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(readTarFile(t, ociPath, blob(idx.Manifests[0].Digest)), &m); err != nil {
		t.Fatal(err)
	}
	readTarFile(t, ociPath, blob(m.Config.Digest))
	for _, l := range m.Layers {
		readTarFile(t, ociPath, blob(l.Digest))
	}
	if len(m.Layers) < 2 {
		t.Fatalf("oci output: %d layers", len(m.Layers))
	}

	// Bad outputs fail before building.
	for _, o := range []string{"type=nope,dest=x", "type=tar", "type=oci", "dest=x"} {
		if res := e.Run("build", "--output", o, dir); res.Code == 0 {
			t.Errorf("--output %s: accepted", o)
		}
	}
}

func slicesHas(m map[string]int, names ...string) bool {
	for _, n := range names {
		if _, ok := m[n]; !ok {
			return false
		}
	}
	return true
}

// TestProgressTTY: on a terminal, the steps are redrawn in place with
// their state; elsewhere --progress=auto gives the plain lines.
func TestProgressTTY(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{
		"Dockerfile": "FROM busybox\nCOPY a.txt /\nRUN echo marker-line && sleep 1\n",
		"a.txt":      "a\n",
	})
	res := e.MustRun("build", "--progress=tty", dir)
	out := res.Stderr
	for _, want := range []string{"[+] Building", "FINISHED", "\x1b[", " => [2/3] COPY a.txt /", " => [3/3] RUN echo marker-line && sleep 1", "=> => # marker-line"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "#1 ") {
		t.Errorf("tty progress has plain lines:\n%s", out)
	}
	// Cached: the steps say so.
	out = e.MustRun("build", "--progress=tty", dir).Stderr
	for _, want := range []string{" => CACHED [2/3] COPY a.txt /", " => CACHED [3/3] RUN"} {
		if !strings.Contains(out, want) {
			t.Errorf("cached tty progress lacks %q:\n%s", want, out)
		}
	}
	// auto on a pipe: plain.
	out = e.MustRun("build", dir).Stderr
	if strings.Contains(out, "\x1b[") || !strings.Contains(out, "#2 CACHED") {
		t.Errorf("auto progress on a pipe is not plain:\n%s", out)
	}
	// auto on a terminal (script(1) gives berth one): the live display.
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) for a terminal")
	}
	cmd := exec.Command("script", "-qec", strings.Join(append([]string{e.Bin}, e.Args("build", "--no-cache", dir)...), " "), "/dev/null")
	cmd.Env = e.Env
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build on a terminal: %v\n%s", err, b)
	}
	if s := string(b); !strings.Contains(s, "[+] Building") || !strings.Contains(s, "FINISHED") {
		t.Errorf("auto progress on a terminal is not the live display:\n%s", s)
	}
}

// layerDiffIDs returns an image's layer diff IDs.
func (e *env) layerDiffIDs(img string) []string {
	e.t.Helper()
	var ids []string
	out := e.MustRun("image", "inspect", "--format", "{{json .RootFS.Layers}}", img).Stdout
	if err := json.Unmarshal([]byte(out), &ids); err != nil {
		e.t.Fatalf("inspect %s: %v: %s", img, err, out)
	}
	return ids
}

// TestCopyLink: COPY --link makes a layer of the copied files alone,
// reused whatever the steps before it.
func TestCopyLink(t *testing.T) {
	e := newEnv(t)
	df := func(word string) string {
		return "FROM busybox\nRUN mkdir -p /x && echo " + word + " > /x/before\nCOPY --link a.txt /x/\nRUN cat /x/a.txt /x/before > /both\n"
	}
	dir := e.context(map[string]string{"Dockerfile": df("one"), "a.txt": "linked\n"})
	e.build("-t", "link:1", dir)
	if got := e.sh("link:1", "cat /both; ls /x | tr '\\n' ' '"); got != "linked\none\na.txt before" {
		t.Fatalf("files after COPY --link: %q", got)
	}
	ids1 := e.layerDiffIDs("link:1")

	// The --link layer holds x/ and x/a.txt only (not /x/before).
	archive := filepath.Join(t.TempDir(), "link.tar")
	e.MustRun("save", "-o", archive, "link:1")
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(readTarFile(t, archive, "manifest.json"), &manifest); err != nil || len(manifest) != 1 {
		t.Fatal(err)
	}
	layers := manifest[0].Layers
	linkLayer := readTarFile(t, archive, layers[len(layers)-2])
	names := tarNames(t, strings.NewReader(string(linkLayer)))
	if len(names) != 2 || !slicesHas(names, "x", "x/a.txt") {
		t.Fatalf("COPY --link layer holds %v, want x and x/a.txt", names)
	}

	// A different step before it: the --link step is cached, its layer
	// the same; the step after it runs again.
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df("two")), 0o644); err != nil {
		t.Fatal(err)
	}
	st := steps(e.build("-t", "link:2", dir).Stderr)
	if !st["[3/4] COPY --link a.txt /x/"] || st["[2/4] RUN mkdir -p /x && echo two > /x/before"] || st["[4/4] RUN cat /x/a.txt /x/before > /both"] {
		t.Fatalf("after changing the step before COPY --link: %v", st)
	}
	ids2 := e.layerDiffIDs("link:2")
	if len(ids1) != len(ids2) || ids1[len(ids1)-2] != ids2[len(ids2)-2] || ids1[len(ids1)-3] == ids2[len(ids2)-3] {
		t.Fatalf("layers %v then %v: want the --link layer alone the same", ids1, ids2)
	}
	if got := e.sh("link:2", "cat /both"); got != "linked\ntwo" {
		t.Fatalf("after the cached --link step: %q", got)
	}
	// Without --link the same change reruns the COPY.
	plain := strings.ReplaceAll(df("three"), "--link ", "")
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(plain), 0o644)
	e.build(dir)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(strings.ReplaceAll(df("four"), "--link ", "")), 0o644)
	if st := steps(e.build(dir).Stderr); st["[3/4] COPY a.txt /x/"] {
		t.Fatalf("a COPY without --link was cached over a changed parent: %v", st)
	}
}

// TestPullAndPlatform: --pull asks the registry even for a local base and
// fails when it cannot be reached, as Docker does; another platform than
// the host's is refused clearly.
func TestPullAndPlatform(t *testing.T) {
	e := newEnv(t)
	e.MustRun("tag", "busybox", "127.0.0.1:1/local/base:v1")
	dir := e.context(map[string]string{"Dockerfile": "FROM 127.0.0.1:1/local/base:v1\nRUN true\n"})
	e.build("-t", "pulled:v1", dir)
	e.MustRun("rmi", "pulled:v1")
	res := e.Run("build", "--progress=plain", "--pull", "-t", "pulled:v1", dir)
	if res.Code == 0 || !strings.Contains(res.Stderr, "failed to resolve source metadata for 127.0.0.1:1/local/base:v1") {
		t.Fatalf("--pull with an unreachable registry: %s", res)
	}
	if res := e.Run("image", "inspect", "pulled:v1"); res.Code == 0 {
		t.Fatal("a failed --pull build tagged its image")
	}

	// The build's --platform and FROM --platform.
	res = e.Run("build", "--platform", "linux/arm64", dir)
	if res.Code == 0 || !strings.Contains(res.Stderr, "platform linux/arm64: berth builds for this machine's platform only") {
		t.Fatalf("--platform linux/arm64: %s", res)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	dir2 := e.context(map[string]string{"Dockerfile": "FROM --platform=linux/" + other + " busybox\n"})
	res = e.Run("build", dir2)
	if res.Code == 0 || !strings.Contains(res.Stderr, "Dockerfile:1: FROM --platform=linux/"+other+" busybox: platform linux/"+other) {
		t.Fatalf("FROM --platform=linux/%s: %s", other, res)
	}
	dir3 := e.context(map[string]string{"Dockerfile": "FROM --platform=$BUILDPLATFORM busybox\nRUN true\n"})
	e.build("--platform", "linux", dir3)
}

// buildLeftovers lists what builds left: mounts under the run root's
// build/, its entries, and writable snapshots.
func (e *env) buildLeftovers() (mounts, dirs, actives []string) {
	e.t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		e.t.Fatal(err)
	}
	prefix := filepath.Join(e.RunRoot, "build") + "/"
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			mounts = append(mounts, f[4])
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.RunRoot, "build"))
	for _, en := range ents {
		dirs = append(dirs, en.Name())
	}
	actives, _ = filepath.Glob(filepath.Join(e.Root, "snapshots", "*", "active", "*"))
	if more, _ := filepath.Glob(filepath.Join(e.Root, "snapshots", "active", "*")); len(more) > 0 {
		actives = append(actives, more...)
	}
	return mounts, dirs, actives
}

// TestKilledBuild: a build killed in a RUN step leaves its snapshot
// mounted and its process running; the next build, or builder prune,
// removes them.
func TestKilledBuild(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{"Dockerfile": "FROM busybox\nRUN echo started && sleep 6789\n"})
	for _, next := range [][]string{{"builder", "prune", "-f"}, {"build", "-q", e.context(map[string]string{"Dockerfile": "FROM busybox\nRUN true\n"})}} {
		cmd := exec.Command(e.Bin, e.Args("build", "--progress=plain", dir)...)
		cmd.Env = e.Env
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the step's output: the snapshot is mounted and the
		// process runs.
		buf := make([]byte, 4096)
		var seen string
		// (The step's title says "started" too: wait for its output.)
		for !regexp.MustCompile(`(?m)^#\d+ [0-9.]+ started$`).MatchString(seen) {
			n, err := stderr.Read(buf)
			if err != nil {
				cmd.Process.Kill()
				t.Fatalf("build ended before its RUN step ran: %v\n%s", err, seen)
			}
			seen += string(buf[:n])
		}
		cmd.Process.Kill()
		cmd.Wait()
		mounts, dirs, actives := e.buildLeftovers()
		if len(mounts) == 0 || len(dirs) == 0 || len(actives) == 0 {
			t.Fatalf("a killed build left nothing to clean (mounts %v, dirs %v, snapshots %v): the test cannot see leftovers", mounts, dirs, actives)
		}
		running := sleeping()
		e.MustRun(next...)
		mounts, dirs, actives = e.buildLeftovers()
		if len(mounts) > 0 || len(dirs) > 0 || len(actives) > 0 {
			t.Fatalf("after %s: mounts %v, dirs %v, snapshots %v remain", next[0], mounts, dirs, actives)
		}
		for i := 0; running && sleeping(); i++ {
			if i == 50 {
				t.Fatalf("after %s: the killed build's RUN process still runs", next[0])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// sleeping reports whether a `sleep 6789` runs on the machine.
func sleeping() bool {
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err == nil && string(b) == "sleep\x006789\x00" {
			return true
		}
	}
	return false
}
