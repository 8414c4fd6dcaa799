package transfer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/remotes"
	"github.com/berth-dev/berth/remotes/registrytest"
)

// blob is a blob of a test image.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) desc() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: b.mediaType, Digest: digest.FromBytes(b.data), Size: int64(len(b.data))}
}

// testImage is an image made in memory: its blobs and its manifest.
type testImage struct {
	config   blob
	layers   []blob
	manifest blob
}

// layerTar makes a layer holding files (name to content).
func layerTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return buf.Bytes()
}

// compress compresses a layer: "gzip", "zstd" or "" (none).
func compress(t *testing.T, how string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch how {
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case "zstd":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	default:
		return b
	}
	return buf.Bytes()
}

// makeImage builds an image of one layer per entry of layers, compressed
// as comp says, in the OCI or the Docker schema 2 format, for arch.
func makeImage(t *testing.T, oci bool, comp, arch string, layers ...map[string]string) testImage {
	t.Helper()
	var img testImage
	cfg := image.Config{OS: "linux", Architecture: arch, RootFS: ocispec.RootFS{Type: "layers"}}
	cfg.Config.Cmd = []string{"/bin/sh"}
	for _, files := range layers {
		raw := layerTar(t, files)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(raw))
		mt := map[string]string{"gzip": ocispec.MediaTypeImageLayerGzip, "zstd": ocispec.MediaTypeImageLayerZstd, "": ocispec.MediaTypeImageLayer}[comp]
		if !oci {
			mt = map[string]string{"gzip": image.MediaTypeDockerLayerGzip, "zstd": image.MediaTypeDockerLayerZstd, "": image.MediaTypeDockerLayer}[comp]
		}
		img.layers = append(img.layers, blob{mt, compress(t, comp, raw)})
	}
	cb, _ := json.Marshal(cfg)
	m := image.Manifest{SchemaVersion: 2, MediaType: ocispec.MediaTypeImageManifest}
	img.config = blob{ocispec.MediaTypeImageConfig, cb}
	if !oci {
		m.MediaType = image.MediaTypeDockerManifest
		img.config.mediaType = image.MediaTypeDockerConfig
	}
	m.Config = img.config.desc()
	for _, l := range img.layers {
		m.Layers = append(m.Layers, l.desc())
	}
	mb, _ := json.Marshal(m)
	img.manifest = blob{m.MediaType, mb}
	return img
}

// indexOf makes an index of images, one per platform.
func indexOf(oci bool, imgs map[string]testImage) blob {
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	idx.MediaType = ocispec.MediaTypeImageIndex
	if !oci {
		idx.MediaType = image.MediaTypeDockerManifestList
	}
	keys := make([]string, 0, len(imgs))
	for k := range imgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, arch := range keys {
		d := imgs[arch].manifest.desc()
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, _ := json.Marshal(idx)
	return blob{idx.MediaType, b}
}

// pushRaw uploads an image's blobs and manifest as they are, with
// go-containerregistry, to a registry.
func pushRaw(t *testing.T, host, repo, tag string, img testImage) {
	t.Helper()
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append([]blob{img.config}, img.layers...) {
		if err := remote.WriteLayer(r, static.NewLayer(b.data, types.MediaType(b.mediaType))); err != nil {
			t.Fatal(err)
		}
	}
	putManifest(t, r, tag, img.manifest)
}

func putManifest(t *testing.T, r name.Repository, ident string, m blob) {
	t.Helper()
	var ref name.Reference = r.Tag(ident)
	if strings.HasPrefix(ident, "sha256:") {
		ref = r.Digest(ident)
	}
	if err := remote.Put(ref, rawManifest{raw: m.data, mediaType: types.MediaType(m.mediaType)}); err != nil {
		t.Fatal(err)
	}
}

// Both manifest formats, the three compressions and a multi-platform index
// pull from docker-registry, and the layers land unpacked.
func TestPullFormats(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	client := testClient(t, nil)
	for _, tc := range []struct {
		oci  bool
		comp string
	}{{false, "gzip"}, {true, "gzip"}, {true, "zstd"}, {true, ""}, {false, ""}} {
		t.Run(fmt.Sprintf("oci=%v,%s", tc.oci, tc.comp), func(t *testing.T) {
			img := makeImage(t, tc.oci, tc.comp, "amd64", map[string]string{"a": "one"}, map[string]string{"b": "two", "a": "again"})
			tag := fmt.Sprintf("%v-%s", tc.oci, tc.comp)
			pushRaw(t, reg.Host, "formats", tag, img)
			e := newEngine(t)
			ref := reg.Host + "/formats:" + tag
			res, err := Pull(ctx, e, ref, PullOptions{Remotes: client, Platform: "linux/amd64"})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].ID != img.config.desc().Digest || res[0].Digest != img.manifest.desc().Digest {
				t.Fatalf("pulled %s (manifest %s), want %s (%s)", res[0].ID, res[0].Digest, img.config.desc().Digest, img.manifest.desc().Digest)
			}
			checkUnpacked(t, e, res[0].ID)
		})
	}

	t.Run("index", func(t *testing.T) {
		imgs := map[string]testImage{
			"amd64": makeImage(t, true, "gzip", "amd64", map[string]string{"arch": "amd64"}),
			"arm64": makeImage(t, true, "zstd", "arm64", map[string]string{"arch": "arm64"}),
		}
		r, _ := name.NewRepository(reg.Host+"/multi", name.Insecure)
		for _, img := range imgs {
			pushRaw(t, reg.Host, "multi", img.manifest.desc().Digest.String(), img)
		}
		idx := indexOf(true, imgs)
		putManifest(t, r, "v1", idx)
		for _, arch := range []string{"amd64", "arm64"} {
			e := newEngine(t)
			res, err := Pull(ctx, e, reg.Host+"/multi:v1", PullOptions{Remotes: client, Platform: "linux/" + arch})
			if err != nil {
				t.Fatal(err)
			}
			if want := imgs[arch].config.desc().Digest; res[0].ID != want {
				t.Fatalf("--platform linux/%s pulled %s, want %s", arch, res[0].ID, want)
			}
			ins, err := e.InspectImage(ctx, reg.Host+"/multi:v1")
			if err != nil {
				t.Fatal(err)
			}
			// RepoDigests name the index, as Docker records them.
			if want := reg.Host + "/multi@" + idx.desc().Digest.String(); !slices.Equal(ins.RepoDigests, []string{want}) {
				t.Fatalf("RepoDigests %v, want %s", ins.RepoDigests, want)
			}
			checkUnpacked(t, e, res[0].ID)
		}
	})
}

func checkUnpacked(t *testing.T, e *engine.Engine, id digest.Digest) {
	t.Helper()
	ctx := context.Background()
	db, err := e.ImageStore().Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec := db.Images[id]
	if rec == nil {
		t.Fatalf("image %s not recorded", id)
	}
	for _, c := range image.ChainIDs(rec.DiffIDs) {
		if _, err := e.Snapshotter().Stat(ctx, c); err != nil {
			t.Fatalf("layer %s not unpacked: %v", c, err)
		}
	}
	if _, err := e.ContentStore().Info(ctx, rec.Manifest.Digest); err != nil {
		t.Fatalf("manifest not stored: %v", err)
	}
}

// fakeRegistry is a tiny registry for what a real one will not serve: bad
// digests, schema 1, connections cut short.
type fakeRegistry struct {
	manifests map[string]blob // by tag or digest
	blobs     map[digest.Digest][]byte
	// cut, if > 0, is how many GETs of a layer blob are cut off halfway.
	cut int

	mu     sync.Mutex
	ranges []string
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		w.WriteHeader(http.StatusOK)
	case strings.Contains(p, "/manifests/"):
		m, ok := f.manifests[p[strings.LastIndex(p, "/")+1:]]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
			return
		}
		w.Header().Set("Content-Type", m.mediaType)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(m.data).String())
		w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
		if r.Method != http.MethodHead {
			w.Write(m.data)
		}
	case strings.Contains(p, "/blobs/"):
		d := digest.Digest(p[strings.LastIndex(p, "/")+1:])
		b, ok := f.blobs[d]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			f.mu.Lock()
			f.ranges = append(f.ranges, rg)
			f.mu.Unlock()
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(b)-1, len(b)))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		}
		f.mu.Lock()
		cut := f.cut > 0 && len(b) > 1024
		if cut {
			f.cut--
		}
		f.mu.Unlock()
		if cut {
			// Send half of what is left, then break the connection.
			half := start + (len(b)-start)/2
			w.Write(b[start:half])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
			return
		}
		w.Write(b[start:])
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeRegistry) add(tag string, img testImage) {
	if f.manifests == nil {
		f.manifests = map[string]blob{}
		f.blobs = map[digest.Digest][]byte{}
	}
	f.manifests[tag] = img.manifest
	f.manifests[img.manifest.desc().Digest.String()] = img.manifest
	for _, b := range append([]blob{img.config}, img.layers...) {
		f.blobs[b.desc().Digest] = b.data
	}
}

func startFake(t *testing.T, f *fakeRegistry) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Bad input fails with one line naming the reference, exit class of an
// engine error, and leaves the store exactly as it was.
func TestPullBadInput(t *testing.T) {
	ctx := context.Background()
	authReg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"alice": "secret"}})
	plain := registrytest.Start(t, registrytest.Options{})

	good := makeImage(t, true, "gzip", "amd64", map[string]string{"f": strings.Repeat("x", 4096)})
	bad := makeImage(t, true, "gzip", "amd64", map[string]string{"f": strings.Repeat("y", 4096)})
	// The registry sends other bytes than the manifest's digest says.
	tampered := good
	tampered.layers = []blob{{good.layers[0].mediaType, append([]byte(nil), bad.layers[0].data...)}}
	fake := &fakeRegistry{}
	fake.add("ok", makeImage(t, false, "gzip", "amd64", map[string]string{"ok": "ok"}))
	fake.add("tampered", good)
	fake.blobs[good.layers[0].desc().Digest] = tampered.layers[0].data
	s390 := makeImage(t, true, "gzip", "s390x", map[string]string{"f": "s390x"})
	fake.add("s390x-only", s390)
	idx := indexOf(true, map[string]testImage{"s390x": s390})
	fake.manifests["other-platform"] = idx
	fake.manifests["schema1"] = blob{"application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{"schemaVersion":1,"name":"x","tag":"schema1","fsLayers":[],"history":[]}`)}
	fakeHost := startFake(t, fake)

	// Name lookups go to a resolver on a closed loopback port, so that an
	// unknown host fails without any query leaving the machine.
	closed := registrytest.FreePort(t)
	dialer := &net.Dialer{Resolver: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", closed))
	}}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dialer.DialContext
	tr.TLSClientConfig = nil

	authClient, err := remotes.New(remotes.Options{Config: &remotes.Config{CertsDirs: []string{authReg.CertsDir(t)}}, AuthDir: t.TempDir(), Backoff: remotes.Backoff{First: time.Millisecond, Tries: 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ref string
		client    *remotes.Client
		platform  string
		class     error
	}{
		{"unknown host", "nosuch.invalid/app:v1", testClient(t, tr), "", errdefs.ErrUnavailable},
		{"refused", fmt.Sprintf("127.0.0.1:%d/app:v1", closed), testClient(t, nil), "", errdefs.ErrUnavailable},
		{"401", authReg.Host + "/app:v1", authClient, "", errdefs.ErrPermission},
		{"404 tag", plain.Host + "/app:nosuchtag", testClient(t, nil), "", errdefs.ErrNotFound},
		{"digest mismatch", fakeHost + "/app:tampered", testClient(t, nil), "", errdefs.ErrDataCorrupt},
		{"other platform only", fakeHost + "/app:other-platform", testClient(t, nil), "linux/amd64", errdefs.ErrNotFound},
		{"platform of a single manifest", fakeHost + "/app:s390x-only", testClient(t, nil), "linux/amd64", errdefs.ErrNotFound},
		{"schema 1", fakeHost + "/app:schema1", testClient(t, nil), "", errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			importBusybox(t, e, "busybox:keep")
			before := testutil.StoreListing(t, e.Root())
			_, err := Pull(ctx, e, tc.ref, PullOptions{Remotes: tc.client, Platform: tc.platform})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if strings.Contains(msg, "\n") || !strings.Contains(msg, image.Familiar(tc.ref)) {
				t.Errorf("error %q: want one line naming %s", msg, image.Familiar(tc.ref))
			}
			if !errors.Is(err, tc.class) {
				t.Errorf("error %q is not of class %v", msg, tc.class)
			}
			if after := testutil.StoreListing(t, e.Root()); after != before {
				t.Errorf("store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	// The same fake registry serves a good image.
	e := newEngine(t)
	if _, err := Pull(ctx, e, fakeHost+"/app:ok", PullOptions{Remotes: testClient(t, nil)}); err != nil {
		t.Fatal(err)
	}
}

// A download cut off halfway resumes with a Range request: within one pull
// when a retry is allowed, and in the next pull when it is not.
func TestPullResume(t *testing.T) {
	ctx := context.Background()
	img := makeImage(t, true, "", "amd64", map[string]string{"big": strings.Repeat("0123456789", 50000)})

	t.Run("within a pull", func(t *testing.T) {
		fake := &fakeRegistry{cut: 1}
		fake.add("v1", img)
		host := startFake(t, fake)
		e := newEngine(t)
		if _, err := Pull(ctx, e, host+"/app:v1", PullOptions{Remotes: testClient(t, nil)}); err != nil {
			t.Fatal(err)
		}
		if len(fake.ranges) != 1 {
			t.Fatalf("Range requests %v, want one", fake.ranges)
		}
		checkUnpacked(t, e, img.config.desc().Digest)
	})
	t.Run("next pull", func(t *testing.T) {
		fake := &fakeRegistry{cut: 1}
		fake.add("v1", img)
		host := startFake(t, fake)
		e := newEngine(t)
		once, err := remotes.New(remotes.Options{Config: &remotes.Config{}, AuthDir: t.TempDir(), Backoff: remotes.Backoff{First: time.Millisecond, Tries: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Pull(ctx, e, host+"/app:v1", PullOptions{Remotes: once}); err == nil {
			t.Fatal("pull with a connection cut and no retry succeeded")
		}
		if _, err := Pull(ctx, e, host+"/app:v1", PullOptions{Remotes: once}); err != nil {
			t.Fatal(err)
		}
		if len(fake.ranges) != 1 || fake.ranges[0] == "bytes=0-" {
			t.Fatalf("Range requests %v, want one from where the first pull stopped", fake.ranges)
		}
		checkUnpacked(t, e, img.config.desc().Digest)
	})
}
