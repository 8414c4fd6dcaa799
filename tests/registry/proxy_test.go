package registry

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/registry"
)

// image is a one-layer image as pushed by pushImage.
type image struct {
	manifest []byte
	digest   digest.Digest
	layer    []byte
	config   []byte
}

func newImage(t *testing.T, size int, note string) image {
	t.Helper()
	layer := make([]byte, size)
	rand.Read(layer)
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{"Labels":{"note":%q}}}`, digest.FromBytes(layer), note))
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	return image{manifest: m, digest: digest.FromBytes(m), layer: layer, config: cfg}
}

// pushImage pushes img as repo:tag through the API.
func pushImage(t *testing.T, addr, repo, tag string, img image) {
	t.Helper()
	for _, b := range [][]byte{img.config, img.layer} {
		resp, err := http.Post(fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", addr, repo, digest.FromBytes(b)), "application/octet-stream", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("push blob to %s/%s: %s", addr, repo, resp.Status)
		}
	}
	req, _ := http.NewRequest("PUT", fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), bytes.NewReader(img.manifest))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest to %s/%s:%s: %s", addr, repo, tag, resp.Status)
	}
}

// get fetches path from addr and returns the status, body and digest header.
func get(t *testing.T, method, addr, path string) (int, []byte, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, b, resp.Header.Get("Docker-Content-Digest")
}

// pullImage pulls repo:tag from addr and checks it is img.
func pullImage(t *testing.T, addr, repo, tag string, img image) {
	t.Helper()
	code, m, dg := get(t, "GET", addr, "/v2/"+repo+"/manifests/"+tag)
	if code != 200 || !bytes.Equal(m, img.manifest) || dg != img.digest.String() {
		t.Fatalf("GET %s/%s:%s: %d %s digest %s, want %s", addr, repo, tag, code, m, dg, img.digest)
	}
	for _, b := range [][]byte{img.config, img.layer} {
		d := digest.FromBytes(b)
		code, got, _ := get(t, "GET", addr, "/v2/"+repo+"/blobs/"+d.String())
		if code != 200 || !bytes.Equal(got, b) {
			t.Fatalf("GET blob %s of %s: %d, %d bytes (want %d)", d, repo, code, len(got), len(b))
		}
	}
}

func cachedBlob(root string, d digest.Digest) bool {
	_, err := os.Stat(filepath.Join(root, "blobs", d.Algorithm().String(), d.Encoded()))
	return err == nil
}

// TestPullThrough: a registry caching two upstreams (berth registries on
// loopback), each under its own prefix.
func TestPullThrough(t *testing.T) {
	up1, stop1 := serveStoppable(t, registry.Config{})
	up2 := serve(t, registry.Config{})
	a1 := newImage(t, 3<<20, "one")
	a2 := newImage(t, 1<<20, "two")
	pushImage(t, up1, "lib/app", "v1", a1)
	pushImage(t, up2, "tools/app", "v1", a2)

	const ttl = 300 * time.Millisecond
	var cfg registry.Config
	cfg.Root = t.TempDir()
	cfg.Proxies = []registry.ProxyConfig{
		{Prefix: "one", URL: "http://" + up1, TagTTL: registry.Duration(ttl)},
		{Prefix: "mirror/two", URL: "http://" + up2, TagTTL: registry.Duration(ttl)},
	}
	cache := serve(t, cfg)

	// Misses fetch from the right upstream, stream, and store.
	pullImage(t, cache, "one/lib/app", "v1", a1)
	pullImage(t, cache, "mirror/two/tools/app", "v1", a2)
	for _, d := range []digest.Digest{a1.digest, digest.FromBytes(a1.layer), a2.digest, digest.FromBytes(a2.layer)} {
		if !cachedBlob(cfg.Root, d) {
			t.Errorf("%s not stored in the cache", d)
		}
	}
	if code, _, _ := get(t, "GET", cache, "/v2/one/tools/app/manifests/v1"); code != 404 {
		t.Errorf("one/tools/app (only on the second upstream): %d, want 404", code)
	}
	if code, _, _ := get(t, "GET", cache, "/v2/two/tools/app/manifests/v1"); code != 404 {
		t.Errorf("two/tools/app (not a prefix): %d, want 404", code)
	}
	// HEAD of a blob not cached yet answers from upstream, storing nothing.
	other := newImage(t, 1000, "other")
	pushImage(t, up1, "lib/other", "v1", other)
	code, _, dg := get(t, "HEAD", cache, "/v2/one/lib/other/blobs/"+digest.FromBytes(other.layer).String())
	if code != 200 || dg != digest.FromBytes(other.layer).String() || cachedBlob(cfg.Root, digest.FromBytes(other.layer)) {
		t.Errorf("HEAD of an uncached blob: %d %q, stored %v", code, dg, cachedBlob(cfg.Root, digest.FromBytes(other.layer)))
	}
	// The cache is read-only to clients.
	resp, err := http.Post("http://"+cache+"/v2/one/lib/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("push into a cached repository: %s, want 405", resp.Status)
	}
	// Tags list the upstream's.
	code, body, _ := get(t, "GET", cache, "/v2/one/lib/app/tags/list")
	if code != 200 || !strings.Contains(string(body), `"v1"`) {
		t.Errorf("tags: %d %s", code, body)
	}

	// A tag moved upstream: the cache serves the old one within the TTL,
	// and the new one after.
	b1 := newImage(t, 1<<20, "one, later")
	pushImage(t, up1, "lib/app", "v1", b1)
	if _, m, _ := get(t, "GET", cache, "/v2/one/lib/app/manifests/v1"); !bytes.Equal(m, a1.manifest) {
		t.Errorf("within the TTL the cache asked upstream again")
	}
	time.Sleep(ttl + 100*time.Millisecond)
	pullImage(t, cache, "one/lib/app", "v1", b1)

	// Concurrent pulls of one big blob share the download and all verify.
	big := newImage(t, 16<<20, "big")
	pushImage(t, up1, "lib/big", "v1", big)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get("http://" + cache + "/v2/one/lib/big/blobs/" + digest.FromBytes(big.layer).String())
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			v := digest.Canonical.Digester()
			n, err := io.Copy(v.Hash(), resp.Body)
			if err != nil || resp.StatusCode != 200 || v.Digest() != digest.FromBytes(big.layer) {
				t.Errorf("concurrent pull: %s %d bytes %v", resp.Status, n, err)
			}
		}()
	}
	wg.Wait()
	// A range of a blob not cached yet.
	req, _ := http.NewRequest("GET", "http://"+cache+"/v2/one/lib/other/blobs/"+digest.FromBytes(other.layer).String(), nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, other.layer[10:20]) {
		t.Errorf("range of an uncached blob: %s %x", resp.Status, part)
	}

	// The first upstream goes away: what is cached is still served, tags
	// past their TTL included.
	stop1()
	time.Sleep(ttl + 100*time.Millisecond)
	pullImage(t, cache, "one/lib/app", "v1", b1)
	code, _, _ = get(t, "GET", cache, "/v2/one/lib/app/manifests/"+a1.digest.String())
	if code != 200 {
		t.Errorf("manifest cached by digest, upstream down: %d", code)
	}
	if code, body, _ := get(t, "GET", cache, "/v2/one/lib/never/manifests/v1"); code != 503 {
		t.Errorf("uncached manifest, upstream down: %d %s, want 503", code, body)
	}
	// The other upstream is unaffected.
	pullImage(t, cache, "mirror/two/tools/app", "v1", a2)
}

// TestPullThroughCorruptUpstream: a blob whose bytes do not match its
// digest is not stored, and the client's transfer breaks.
func TestPullThroughCorruptUpstream(t *testing.T) {
	img := newImage(t, 1<<20, "x")
	layer := digest.FromBytes(img.layer)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(200)
		case strings.HasSuffix(r.URL.Path, "/blobs/"+layer.String()):
			bad := bytes.Clone(img.layer)
			bad[len(bad)/2] ^= 1
			w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
			w.Write(bad)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	var cfg registry.Config
	cfg.Root = t.TempDir()
	cfg.Proxies = []registry.ProxyConfig{{Prefix: "up", URL: up.URL}}
	cache := serve(t, cfg)
	resp, err := http.Get("http://" + cache + "/v2/up/x/blobs/" + layer.String())
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Errorf("a corrupt blob was delivered whole")
	}
	time.Sleep(100 * time.Millisecond)
	if cachedBlob(cfg.Root, layer) {
		t.Fatal("a corrupt blob was stored")
	}
}
