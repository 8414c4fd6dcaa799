package transfer

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/remotes"
	"github.com/berth-dev/berth/remotes/registrytest"
)

// countingTransport counts the requests that upload blobs.
type countingTransport struct {
	inner http.RoundTripper

	mu      sync.Mutex
	uploads int
	gets    int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Method != http.MethodHead {
		c.uploads++
	}
	if strings.Contains(req.URL.Path, "/blobs/sha256:") && req.Method == http.MethodGet {
		c.gets++
	}
	c.mu.Unlock()
	return c.inner.RoundTrip(req)
}

func (c *countingTransport) counts() (uploads, gets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uploads, c.gets
}

func testClient(t *testing.T, tr http.RoundTripper) *remotes.Client {
	t.Helper()
	c, err := remotes.New(remotes.Options{Config: &remotes.Config{}, AuthDir: t.TempDir(), Transport: tr, Backoff: remotes.Backoff{First: 1, Tries: 2}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An image berth imported goes to a registry and comes back into another
// store with the same ID, layers and digest; a second push sends no blob.
func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	ref := reg.Host + "/test/busybox:v1"
	src := newEngine(t)
	id := importBusybox(t, src, ref)

	ct := &countingTransport{inner: http.DefaultTransport}
	client := testClient(t, ct)
	var events []Progress
	pushed, err := Push(ctx, src, ref, PushOptions{Remotes: client, Progress: func(p Progress) { events = append(events, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if up, _ := ct.counts(); up == 0 {
		t.Fatal("first push uploaded nothing")
	}
	ins, err := src.InspectImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	wantDigest := reg.Host + "/test/busybox@" + pushed[0].Digest.String()
	if !slices.Contains(ins.RepoDigests, wantDigest) {
		t.Fatalf("after push RepoDigests = %v, want %s", ins.RepoDigests, wantDigest)
	}

	ct2 := &countingTransport{inner: http.DefaultTransport}
	events = nil
	if _, err := Push(ctx, src, ref, PushOptions{Remotes: testClient(t, ct2), Progress: func(p Progress) { events = append(events, p) }}); err != nil {
		t.Fatal(err)
	}
	if up, _ := ct2.counts(); up != 0 {
		t.Fatalf("second push started %d uploads, want none", up)
	}
	if !slices.ContainsFunc(events, func(p Progress) bool { return p.Status == "Layer already exists" }) {
		t.Fatalf("second push: no \"Layer already exists\" in %v", events)
	}

	dst := newEngine(t)
	res, err := Pull(ctx, dst, ref, PullOptions{Remotes: testClient(t, http.DefaultTransport)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].ID != id || res[0].Digest != pushed[0].Digest {
		t.Fatalf("pulled %s (manifest %s), want %s (manifest %s)", res[0].ID, res[0].Digest, id, pushed[0].Digest)
	}
	got, err := dst.InspectImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.RootFS.Layers, ins.RootFS.Layers) || !slices.Equal(got.RepoDigests, []string{wantDigest}) || !slices.Equal(got.RepoTags, []string{ref}) {
		t.Fatalf("pulled image: tags %v digests %v layers %v; want %v %v %v", got.RepoTags, got.RepoDigests, got.RootFS.Layers, []string{ref}, []string{wantDigest}, ins.RootFS.Layers)
	}
	db, err := dst.ImageStore().Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chainIDsOf(db.Images[id].DiffIDs) {
		if _, err := dst.Snapshotter().Stat(ctx, c); err != nil {
			t.Fatalf("layer %s not unpacked: %v", c, err)
		}
	}

	// Again: nothing to fetch.
	ct3 := &countingTransport{inner: http.DefaultTransport}
	res, err = Pull(ctx, dst, ref, PullOptions{Remotes: testClient(t, ct3)})
	if err != nil {
		t.Fatal(err)
	}
	if _, gets := ct3.counts(); gets != 0 || !res[0].UpToDate {
		t.Fatalf("second pull fetched %d blobs (up to date: %v), want none", gets, res[0].UpToDate)
	}

	// By digest, into a third store.
	third := newEngine(t)
	res, err = Pull(ctx, third, wantDigest, PullOptions{Remotes: testClient(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].ID != id {
		t.Fatalf("pull by digest: got %s, want %s", res[0].ID, id)
	}
	if _, err := third.InspectImage(ctx, wantDigest); err != nil {
		t.Fatal(err)
	}
}

func chainIDsOf(diffIDs []digest.Digest) []digest.Digest { return image.ChainIDs(diffIDs) }
