package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/storage"
)

type env struct {
	t    *testing.T
	srv  *httptest.Server
	root string
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	root := t.TempDir()
	s, err := storage.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(s, opts))
	t.Cleanup(func() { srv.Close(); s.Close() })
	return &env{t: t, srv: srv, root: root}
}

func (e *env) do(method, path string, body []byte, hdr ...string) *http.Response {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// expect checks a response's status and, for errors, its spec error code.
func expect(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if code == "" {
		return
	}
	var body struct{ Errors []struct{ Code string } }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) == 0 || body.Errors[0].Code != code {
		t.Fatalf("%s %s: error body %+v (%v), want code %s", resp.Request.Method, resp.Request.URL.Path, body, err, code)
	}
}

func (e *env) pushBlob(name string, b []byte) digest.Digest {
	d := digest.FromBytes(b)
	expect(e.t, e.do("POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), b), 201, "")
	return d
}

func (e *env) blobCount() int {
	n := 0
	filepath.WalkDir(filepath.Join(e.root, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func image(config digest.Digest, configSize int, layers ...digest.Digest) []byte {
	var ls []string
	for _, l := range layers {
		ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":1}`, l))
	}
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		config, configSize, strings.Join(ls, ","))
}

const ctManifest = "application/vnd.oci.image.manifest.v1+json"

func TestPushPullRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	cfg := e.pushBlob("a/b", []byte("{}"))
	layer := e.pushBlob("a/b", []byte("layer"))
	m := image(cfg, 2, layer)
	resp := e.do("PUT", "/v2/a/b/manifests/v1", m, "Content-Type", ctManifest)
	expect(t, resp, 201, "")
	if got, want := resp.Header.Get("Docker-Content-Digest"), digest.FromBytes(m).String(); got != want {
		t.Fatalf("digest header %q, want %q", got, want)
	}
	resp = e.do("GET", "/v2/a/b/manifests/v1", nil)
	expect(t, resp, 200, "")
	if ct := resp.Header.Get("Content-Type"); ct != ctManifest {
		t.Fatalf("Content-Type %q", ct)
	}
	if b, _ := io.ReadAll(resp.Body); !bytes.Equal(b, m) {
		t.Fatalf("manifest differs: %s", b)
	}
	resp = e.do("GET", "/v2/a/b/blobs/"+layer.String(), nil, "Range", "bytes=1-3")
	expect(t, resp, 206, "")
	if b, _ := io.ReadAll(resp.Body); string(b) != "aye" {
		t.Fatalf("range got %q", b)
	}
	resp = e.do("GET", "/v2/a/b/tags/list", nil)
	expect(t, resp, 200, "")
	var tl struct {
		Name string
		Tags []string
	}
	json.NewDecoder(resp.Body).Decode(&tl)
	if tl.Name != "a/b" || len(tl.Tags) != 1 || tl.Tags[0] != "v1" {
		t.Fatalf("tags: %+v", tl)
	}
	resp = e.do("GET", "/v2/_catalog", nil)
	expect(t, resp, 200, "")
	var cat struct{ Repositories []string }
	json.NewDecoder(resp.Body).Decode(&cat)
	if len(cat.Repositories) != 1 || cat.Repositories[0] != "a/b" {
		t.Fatalf("catalog: %+v", cat)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, Options{MaxManifestSize: 1024, MaxBodySize: 1 << 20})
	cfg := e.pushBlob("app", []byte("{}"))
	before := e.blobCount()
	good := image(cfg, 2)

	cases := []struct {
		name         string
		method, path string
		body         []byte
		hdr          []string
		status       int
		code         string
	}{
		{"malformed JSON", "PUT", "/v2/app/manifests/v1", []byte(`{"schemaVersion":2,`), []string{"Content-Type", ctManifest}, 400, codeManifestInvalid},
		{"JSON not an object", "PUT", "/v2/app/manifests/v1", []byte(`null`), []string{"Content-Type", ctManifest}, 400, codeManifestInvalid},
		{"unknown media type", "PUT", "/v2/app/manifests/v1", []byte(`{"schemaVersion":2,"mediaType":"application/x-nonsense","config":{}}`), []string{"Content-Type", "application/x-nonsense"}, 400, codeManifestInvalid},
		{"media type mismatch", "PUT", "/v2/app/manifests/v1", good, []string{"Content-Type", mtOCIIndex}, 400, codeManifestInvalid},
		{"manifest digest mismatch", "PUT", "/v2/app/manifests/" + digest.FromString("x").String(), good, []string{"Content-Type", ctManifest}, 400, codeDigestInvalid},
		{"malformed digest", "PUT", "/v2/app/manifests/sha256:nothex", good, []string{"Content-Type", ctManifest}, 400, codeDigestInvalid},
		{"missing blob", "PUT", "/v2/app/manifests/v1", image(cfg, 2, digest.FromString("missing")), []string{"Content-Type", ctManifest}, 400, codeManifestBlobUnknown},
		{"oversized manifest", "PUT", "/v2/app/manifests/v1", bytes.Repeat([]byte(" "), 2048), []string{"Content-Type", ctManifest}, 413, codeSizeInvalid},
		{"blob digest mismatch", "POST", "/v2/app/blobs/uploads/?digest=" + digest.FromString("x").String(), []byte("y"), nil, 400, codeDigestInvalid},
		{"oversized blob", "POST", "/v2/app/blobs/uploads/?digest=" + digest.FromString("x").String(), bytes.Repeat([]byte("x"), 2<<20), nil, 413, codeSizeInvalid},
		{"dot-dot name", "GET", "/v2/app/../etc/tags/list", nil, nil, 400, codeNameInvalid},
		{"upper-case name", "GET", "/v2/App/tags/list", nil, nil, 400, codeNameInvalid},
		{"unknown upload", "PATCH", "/v2/app/blobs/uploads/0123456789abcdef0123456789abcdef", []byte("x"), nil, 404, codeBlobUploadUnknown},
		{"traversing upload id", "GET", "/v2/app/blobs/uploads/..%2F..%2Fblobs", nil, nil, 404, ""},
		{"unknown blob", "GET", "/v2/app/blobs/" + digest.FromString("nope").String(), nil, nil, 404, codeBlobUnknown},
		{"unknown manifest", "GET", "/v2/app/manifests/nope", nil, nil, 404, codeManifestUnknown},
		{"unknown repository", "GET", "/v2/nope/tags/list", nil, nil, 404, codeNameUnknown},
		{"bad page size", "GET", "/v2/app/tags/list?n=-1", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, e.do(c.method, c.path, c.body, c.hdr...), c.status, c.code)
		})
	}
	if n := e.blobCount(); n != before {
		t.Fatalf("bad input stored %d blobs", n-before)
	}
	resp := e.do("GET", "/v2/app/tags/list", nil)
	var tl struct{ Tags []string }
	json.NewDecoder(resp.Body).Decode(&tl)
	if len(tl.Tags) != 0 {
		t.Fatalf("bad input created tags %v", tl.Tags)
	}
}

func TestInvalidRanges(t *testing.T) {
	e := newEnv(t, Options{})
	d := e.pushBlob("app", bytes.Repeat([]byte("x"), 1000))
	for _, rg := range []string{"bytes=500-0", "bytes=5000-10000"} {
		expect(t, e.do("GET", "/v2/app/blobs/"+d.String(), nil, "Range", rg), 416, "")
	}
	// Chunks out of order are refused with the upload's state.
	resp := e.do("POST", "/v2/app/blobs/uploads/", nil)
	expect(t, resp, 202, "")
	loc := resp.Header.Get("Location")
	expect(t, e.do("PATCH", loc, []byte("abc"), "Content-Range", "0-2"), 202, "")
	resp = e.do("PATCH", loc, []byte("abc"), "Content-Range", "10-12")
	expect(t, resp, 416, "")
	if r := resp.Header.Get("Range"); r != "0-2" {
		t.Fatalf("Range after a refused chunk: %q", r)
	}
	resp = e.do("PUT", loc+"?digest="+digest.FromString("abcdef").String(), []byte("def"), "Content-Range", "3-5")
	expect(t, resp, 201, "")
}

func TestReferrers(t *testing.T) {
	e := newEnv(t, Options{})
	cfg := e.pushBlob("app", []byte("{}"))
	subject := image(cfg, 2)
	sd := digest.FromBytes(subject)
	expect(t, e.do("PUT", "/v2/app/manifests/v1", subject, "Content-Type", ctManifest), 201, "")
	sig := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"artifactType":"application/x-sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[],"subject":{"mediaType":%q,"digest":%q,"size":%d},"annotations":{"k":"v"}}`,
		ctManifest, cfg, ctManifest, sd, len(subject))
	resp := e.do("PUT", "/v2/app/manifests/"+digest.FromBytes(sig).String(), sig, "Content-Type", ctManifest)
	expect(t, resp, 201, "")
	if resp.Header.Get("OCI-Subject") != sd.String() {
		t.Fatalf("OCI-Subject %q", resp.Header.Get("OCI-Subject"))
	}
	for filter, want := range map[string]int{"": 1, "application/x-sig": 1, "application/x-other": 0} {
		resp = e.do("GET", "/v2/app/referrers/"+sd.String()+"?artifactType="+filter, nil)
		expect(t, resp, 200, "")
		var idx struct {
			Manifests []struct {
				ArtifactType string
				Annotations  map[string]string
			}
		}
		json.NewDecoder(resp.Body).Decode(&idx)
		if len(idx.Manifests) != want {
			t.Fatalf("referrers (filter %q): %+v", filter, idx)
		}
		if want == 1 && (idx.Manifests[0].ArtifactType != "application/x-sig" || idx.Manifests[0].Annotations["k"] != "v") {
			t.Fatalf("referrer descriptor: %+v", idx.Manifests[0])
		}
	}
}

func TestReadOnly(t *testing.T) {
	e := newEnv(t, Options{ReadOnly: true})
	expect(t, e.do("POST", "/v2/app/blobs/uploads/", nil), 405, codeUnsupported)
	expect(t, e.do("GET", "/v2/", nil), 200, "")
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, Options{})
	e.do("GET", "/v2/", nil)
	resp := e.do("GET", "/metrics", nil)
	expect(t, resp, 200, "")
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `berth_registry_requests_total{method="GET",code="200"} 1`) {
		t.Fatalf("metrics:\n%s", b)
	}
}

// allowAll is an Authorizer that lets everyone do everything and keeps
// the accesses each request needed.
type allowAll struct{ needed [][]auth.Access }

func (a *allowAll) Authorize(r *http.Request, need []auth.Access) (string, error) {
	a.needed = append(a.needed, need)
	return "tester", nil
}

func TestCrossMount(t *testing.T) {
	for _, tc := range []struct {
		mode CrossMount
		auth bool
		// The statuses of a mount with from and of one without.
		withFrom, withoutFrom int
	}{
		{"", false, 201, 201},
		{MountAuto, false, 201, 201},
		{MountAuto, true, 201, 202},
		{MountFrom, false, 201, 202},
		{MountFrom, true, 201, 202},
		{MountOff, false, 202, 202},
		{MountOff, true, 202, 202},
	} {
		t.Run(fmt.Sprintf("%s/auth=%v", tc.mode, tc.auth), func(t *testing.T) {
			opts := Options{CrossMount: tc.mode}
			var az *allowAll
			if tc.auth {
				az = &allowAll{}
				opts.Auth = az
			}
			e := newEnv(t, opts)
			d := e.pushBlob("src/repo", []byte("shared layer"))
			for i, q := range []string{"?mount=" + d.String() + "&from=src/repo", "?mount=" + d.String()} {
				dst := fmt.Sprintf("dst/repo%d", i)
				resp := e.do("POST", "/v2/"+dst+"/blobs/uploads/"+q, nil)
				want := []int{tc.withFrom, tc.withoutFrom}[i]
				expect(t, resp, want, "")
				loc := resp.Header.Get("Location")
				if want == 201 {
					if loc != "/v2/"+dst+"/blobs/"+d.String() {
						t.Fatalf("mount %s: Location %q", q, loc)
					}
					expect(t, e.do("GET", "/v2/"+dst+"/blobs/"+d.String(), nil), 200, "")
					continue
				}
				// Not mounted: the repository lacks the blob until the
				// upload the registry started completes.
				if !strings.HasPrefix(loc, "/v2/"+dst+"/blobs/uploads/") {
					t.Fatalf("mount %s: Location %q, want an upload of %s", q, loc, dst)
				}
				expect(t, e.do("GET", "/v2/"+dst+"/blobs/"+d.String(), nil), 404, codeBlobUnknown)
				expect(t, e.do("PUT", loc+"?digest="+d.String(), []byte("shared layer"), "Content-Type", "application/octet-stream"), 201, "")
				expect(t, e.do("GET", "/v2/"+dst+"/blobs/"+d.String(), nil), 200, "")
			}
			if az == nil {
				return
			}
			// A mount with from needs pull on from only when it may mount.
			pullFrom := false
			for _, need := range az.needed {
				for _, a := range need {
					if a.Name == "src/repo" && a.Action == auth.Pull && a.Type == "repository" && len(need) > 2 {
						pullFrom = true
					}
				}
			}
			if pullFrom != (tc.mode != MountOff) {
				t.Fatalf("a mount from src/repo needed pull on it: %v, want %v (%v)", pullFrom, tc.mode != MountOff, az.needed)
			}
		})
	}
	for _, s := range []string{"", "auto", "from", "off"} {
		if _, err := ParseCrossMount(s); err != nil {
			t.Errorf("ParseCrossMount(%q): %v", s, err)
		}
	}
	if _, err := ParseCrossMount("never"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ParseCrossMount(never): %v, want an invalid argument", err)
	}
}

// TestServeBlobLoopback checks blobs larger than copyingWriter's buffer,
// whole and in ranges, as they go to a client on loopback (httptest's).
func TestServeBlobLoopback(t *testing.T) {
	e := newEnv(t, Options{})
	b := make([]byte, 3*sendBufSize+12345)
	for i := range b {
		b[i] = byte(i * 7 / 5)
	}
	d := e.pushBlob("big", b)
	resp := e.do("GET", "/v2/big/blobs/"+d.String(), nil)
	expect(t, resp, 200, "")
	if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, b) {
		t.Fatalf("GET: %d bytes, differ from the %d pushed", len(got), len(b))
	}
	start, end := sendBufSize-10, 2*sendBufSize+10
	resp = e.do("GET", "/v2/big/blobs/"+d.String(), nil, "Range", fmt.Sprintf("bytes=%d-%d", start, end))
	expect(t, resp, 206, "")
	if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, b[start:end+1]) {
		t.Fatalf("GET range: %d bytes, differ", len(got))
	}
	resp = e.do("HEAD", "/v2/big/blobs/"+d.String(), nil)
	expect(t, resp, 200, "")
	if resp.ContentLength != int64(len(b)) {
		t.Fatalf("HEAD: Content-Length %d, want %d", resp.ContentLength, len(b))
	}
}
