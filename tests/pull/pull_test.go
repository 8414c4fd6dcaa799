// Package pull holds end-to-end tests, and only tests, of berth pull, push,
// login, logout and manifest inspect through the berth binary, against real
// registries on loopback: Debian's docker-registry over plain HTTP, over
// TLS with htpasswd basic auth, and behind a token server of the test's
// own; and interop with skopeo: what berth pushes skopeo inspects and
// copies, what skopeo pushes (a multi-arch index, a zstd layer) berth pulls
// and runs.
//
// Run them with:
//
//	go test ./tests/pull/
//
// Set BERTH_BIN to test a berth binary already built; otherwise one is built
// from ./cmd/berth. Tests are skipped where a needed program is missing and
// cannot be installed, or while the binary has no pull command yet.
package pull

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/remotes/registrytest"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// newBerth returns a berth with a private store, a private Docker
// configuration directory and an empty registry configuration.
func newBerth(t *testing.T) *testutil.Berth {
	t.Helper()
	b := testutil.NewBerth(t)
	if res := b.Run("pull", "--help"); res.Code != 0 {
		t.Skip("this berth has no pull command wired yet")
	}
	b.Env = append(b.Env, "DOCKER_CONFIG="+t.TempDir())
	return b
}

func inspect(t *testing.T, b *testutil.Berth, ref string) (id string, digests, layers []string) {
	t.Helper()
	out := b.MustRun("image", "inspect", ref).Stdout
	var imgs []struct {
		ID          string `json:"Id"`
		RepoDigests []string
		RootFS      struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(out), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("image inspect %s: %v\n%s", ref, err, out)
	}
	return imgs[0].ID, imgs[0].RepoDigests, imgs[0].RootFS.Layers
}

// The demo's path: import, push, remove, pull back, run.
func TestPushRemovePullRun(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	b := newBerth(t)
	ref := reg.Host + "/demo/busybox:v1"
	b.MustRun("import", "--change", "CMD [\"/bin/sh\"]", testutil.Images(t).Busybox, ref)
	id, _, layers := inspect(t, b, ref)
	out := b.MustRun("push", ref).Stdout
	if !strings.Contains(out, "Pushed") || !strings.Contains(out, "v1: digest: sha256:") {
		t.Fatalf("push output:\n%s", out)
	}
	out = b.MustRun("push", ref).Stdout
	if !strings.Contains(out, "Layer already exists") || strings.Contains(out, "Pushed") {
		t.Fatalf("second push output:\n%s", out)
	}
	b.MustRun("rmi", ref)
	out = b.MustRun("pull", ref).Stdout
	if !strings.Contains(out, "Status: Downloaded newer image for "+ref) {
		t.Fatalf("pull output:\n%s", out)
	}
	id2, digests, layers2 := inspect(t, b, ref)
	if id2 != id || strings.Join(layers2, ",") != strings.Join(layers, ",") || len(digests) != 1 || !strings.HasPrefix(digests[0], reg.Host+"/demo/busybox@sha256:") {
		t.Fatalf("pulled %s %v %v, want %s %v with one RepoDigest", id2, layers2, digests, id, layers)
	}
	if res := b.MustRun("pull", "-q", ref); strings.TrimSpace(res.Stdout) != ref {
		t.Fatalf("pull -q printed %q, want %q", res.Stdout, ref)
	}
	if res := b.Run("run", "--rm", ref, "echo", "hello"); res.Code == 0 && !strings.Contains(res.Stdout, "hello") {
		t.Fatalf("run: %s", res)
	}
	out = b.MustRun("manifest", "inspect", ref).Stdout
	if !strings.Contains(out, `"schemaVersion": 2`) {
		t.Fatalf("manifest inspect:\n%s", out)
	}
}

// Bad input: one line naming the reference, exit 125, store untouched.
func TestPullErrorsCLI(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	b := newBerth(t)
	b.MustRun("images")
	before := testutil.StoreListing(t, b.Root)
	closed := registrytest.FreePort(t)
	for _, ref := range []string{
		reg.Host + "/nosuch:tag",
		"127.0.0.1:" + itoa(closed) + "/app:v1",
	} {
		res := b.Run("pull", ref)
		if res.Code != 125 {
			t.Fatalf("pull %s: exit %d, want 125: %s", ref, res.Code, res)
		}
		lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], ref) {
			t.Fatalf("pull %s: stderr %q, want one line naming it", ref, res.Stderr)
		}
	}
	if after := testutil.StoreListing(t, b.Root); after != before {
		t.Fatalf("store changed:\n%s\n---\n%s", before, after)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Basic auth over TLS: 401 without credentials; login stores them in
// $DOCKER_CONFIG/config.json; push and pull work; logout removes them.
func TestLoginTLSBasicAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"alice": "s3cret"}})
	b := newBerth(t)
	// berth trusts the test's CA through its registry configuration.
	cfg := filepath.Join(t.TempDir(), "registries.json")
	if err := os.WriteFile(cfg, []byte(`{"certs-dirs":["`+reg.CertsDir(t)+`"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Env = append(b.Env, "BERTH_REGISTRIES_CONFIG="+cfg)
	ref := reg.Host + "/private/busybox:v1"
	b.MustRun("import", testutil.Images(t).Busybox, ref)
	if res := b.Run("push", ref); res.Code != 125 || !strings.Contains(res.Stderr, "unauthorized") {
		t.Fatalf("push without login: %s", res)
	}
	if res := b.RunInput(strings.NewReader("wrong\n"), "login", "-u", "alice", "--password-stdin", reg.Host); res.Code != 125 {
		t.Fatalf("login with a wrong password: %s", res)
	}
	res := b.RunInput(strings.NewReader("s3cret\n"), "login", "-u", "alice", "--password-stdin", reg.Host)
	if res.Code != 0 || !strings.Contains(res.Stdout, "Login Succeeded") {
		t.Fatalf("login: %s", res)
	}
	b.MustRun("push", ref)
	b.MustRun("rmi", ref)
	b.MustRun("pull", ref)
	if res := b.MustRun("logout", reg.Host); !strings.Contains(res.Stdout, "Removing login credentials") {
		t.Fatalf("logout: %s", res)
	}
	b.MustRun("rmi", ref)
	if res := b.Run("pull", ref); res.Code != 125 {
		t.Fatalf("pull after logout: %s", res)
	}
}

// Token auth: the registry sends clients to a token server.
func TestTokenAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Token: map[string]string{"bob": "pw"}, AnonymousPull: true})
	b := newBerth(t)
	ref := reg.Host + "/tok/busybox:v1"
	b.MustRun("import", testutil.Images(t).Busybox, ref)
	if res := b.Run("push", ref); res.Code != 125 {
		t.Fatalf("anonymous push: %s", res)
	}
	b.MustRun("login", "-u", "bob", "-p", "pw", reg.Host)
	b.MustRun("push", ref)
	b.MustRun("logout", reg.Host)
	b.MustRun("rmi", ref)
	b.MustRun("pull", ref) // anonymous pull is allowed
}

// skopeo reads what berth pushes; berth pulls what skopeo pushes, a
// multi-arch index with a zstd layer included, and runs it.
func TestSkopeoInterop(t *testing.T) {
	registrytest.Need(t, "skopeo", "skopeo")
	reg := registrytest.Start(t, registrytest.Options{})
	b := newBerth(t)
	ref := reg.Host + "/interop/busybox:v1"
	b.MustRun("import", "--change", "CMD [\"/bin/sh\"]", testutil.Images(t).Busybox, ref)
	b.MustRun("push", ref)
	id, _, _ := inspect(t, b, ref)
	out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--raw", "--config", "docker://"+ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(out)); got != id {
		t.Fatalf("skopeo sees config %s, berth's image is %s", got, id)
	}
	dir := t.TempDir()
	if out, err := exec.Command("skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+"/layout:x").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}

	// skopeo pushes an OCI layout berth did not make: the same root
	// filesystem as a zstd layer, and a multi-arch index of it.
	layout, idxDigest := zstdLayout(t, testutil.Images(t).Busybox)
	zref := reg.Host + "/interop/zstd:v1"
	if out, err := exec.Command("skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:"+layout+":x", "docker://"+zref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy zstd: %v\n%s", err, out)
	}
	b2 := newBerth(t)
	b2.MustRun("pull", zref)
	if res := b2.Run("run", "--rm", zref, "echo", "from-zstd"); res.Code == 0 && !strings.Contains(res.Stdout, "from-zstd") {
		t.Fatalf("run: %s", res)
	}
	mref := reg.Host + "/interop/multi:v1"
	if out, err := exec.Command("skopeo", "copy", "-q", "--all", "--dest-tls-verify=false", "oci:"+layout+":multi", "docker://"+mref).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy --all: %v\n%s", err, out)
	}
	b3 := newBerth(t)
	b3.MustRun("pull", "--platform", "linux/arm64", mref)
	_, digests, _ := inspect(t, b3, mref)
	if len(digests) != 1 || !strings.HasSuffix(digests[0], idxDigest) {
		t.Fatalf("RepoDigests %v, want the index %s", digests, idxDigest)
	}
}

// zstdLayout writes an OCI layout holding rootfs as a one-layer image with
// a zstd layer (named "x") and an index of it for amd64 and arm64 (named
// "multi"); it returns the layout and the index digest.
func zstdLayout(t *testing.T, rootfs string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		hex := fmt.Sprintf("%x", sum)
		must(os.WriteFile(filepath.Join(dir, "blobs", "sha256", hex), b, 0o644))
		return "sha256:" + hex, len(b)
	}
	raw, err := os.ReadFile(rootfs)
	must(err)
	var zbuf bytes.Buffer
	zw, err := zstd.NewWriter(&zbuf)
	must(err)
	zw.Write(raw)
	must(zw.Close())
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(raw))
	ld, ls := put(zbuf.Bytes())
	cd, cs := put([]byte(`{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["` + diffID + `"]}}`))
	md, ms := put([]byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":%q,"size":%d}]}`, cd, cs, ld, ls)))
	entry := func(arch string) string {
		return fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}}`, md, ms, arch)
	}
	id, is := put([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + entry("amd64") + "," + entry("arm64") + `]}`))
	index := fmt.Sprintf(`{"schemaVersion":2,"manifests":[`+
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":"x"}},`+
		`{"mediaType":"application/vnd.oci.image.index.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]}`, md, ms, id, is)
	must(os.WriteFile(filepath.Join(dir, "index.json"), []byte(index), 0o644))
	must(os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return dir, id
}
