package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

func open(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s *Store, name string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	if _, err := s.PutBlob(context.Background(), name, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

func blobFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(root, "blobs"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestPutBlobDigestMismatchStoresNothing(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	_, err := s.PutBlob(ctx, "a/b", digest.FromString("other"), strings.NewReader("content"))
	if !errors.Is(err, errdefs.ErrDataCorrupt) {
		t.Fatalf("PutBlob with a wrong digest: %v, want ErrDataCorrupt", err)
	}
	if f := blobFiles(t, root); len(f) != 0 {
		t.Fatalf("blobs stored after a digest mismatch: %v", f)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "uploads")); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if _, err := s.StatBlob(ctx, "a/b", digest.FromString("content")); !errdefs.IsNotFound(err) {
		t.Fatalf("StatBlob: %v, want not found", err)
	}
}

func TestBlobsAreSharedAcrossRepositories(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	d := put(t, s, "one", []byte("shared"))
	put(t, s, "two", []byte("shared"))
	if f := blobFiles(t, root); len(f) != 1 {
		t.Fatalf("want one copy of the blob, got %v", f)
	}
	if err := s.DeleteBlob(ctx, "one", d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StatBlob(ctx, "one", d); !errdefs.IsNotFound(err) {
		t.Fatalf("blob still in repository one: %v", err)
	}
	if _, err := s.StatBlob(ctx, "two", d); err != nil {
		t.Fatalf("blob gone from repository two: %v", err)
	}
	// A mount from a repository that lacks the blob links nothing.
	if err := s.LinkBlob(ctx, "three", "one", d); !errdefs.IsNotFound(err) {
		t.Fatalf("mount from a repository without the blob: %v", err)
	}
	if err := s.LinkBlob(ctx, "three", "two", d); err != nil {
		t.Fatal(err)
	}
}

// A killed server leaves an upload on disk; a new Store (a restarted server)
// resumes it and nothing partial is ever visible as a blob.
func TestUploadSurvivesRestart(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789"), 100000)
	d := digest.FromBytes(content)

	s1, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s1.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.AppendUpload(ctx, "app", u.ID, 0, bytes.NewReader(content[:300000])); err != nil {
		t.Fatal(err)
	}
	// The server dies here (no Close, no commit).
	if f := blobFiles(t, root); len(f) != 0 {
		t.Fatalf("partial upload visible as a blob: %v", f)
	}

	s2 := open(t, root)
	st, err := s2.UploadStatus(ctx, "app", u.ID)
	if err != nil {
		t.Fatalf("upload lost across restart: %v", err)
	}
	if st.Size != 300000 {
		t.Fatalf("resumed upload has %d bytes, want 300000", st.Size)
	}
	if _, err := s2.UploadStatus(ctx, "other", u.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("upload visible from another repository: %v", err)
	}
	if _, err := s2.AppendUpload(ctx, "app", u.ID, 12, bytes.NewReader(content[12:20])); !errdefs.IsConflict(err) {
		t.Fatalf("out-of-order chunk: %v, want conflict", err)
	}
	if _, err := s2.AppendUpload(ctx, "app", u.ID, 300000, bytes.NewReader(content[300000:])); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.CommitUpload(ctx, "app", u.ID, d); err != nil {
		t.Fatal(err)
	}
	f, _, err := s2.OpenBlob(ctx, "app", d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if !bytes.Equal(got, content) {
		t.Fatal("resumed blob differs")
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "uploads")); len(ents) != 0 {
		t.Fatalf("upload files left after commit: %v", ents)
	}
}

func TestCommitUploadDigestMismatch(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	u, _ := s.StartUpload(ctx, "app")
	s.AppendUpload(ctx, "app", u.ID, -1, strings.NewReader("abc"))
	if _, err := s.CommitUpload(ctx, "app", u.ID, digest.FromString("abd")); !errors.Is(err, errdefs.ErrDataCorrupt) {
		t.Fatalf("commit with a wrong digest: %v", err)
	}
	if f := blobFiles(t, root); len(f) != 0 {
		t.Fatalf("blob stored after a digest mismatch: %v", f)
	}
	// sha512 uploads are verified with sha512.
	u, _ = s.StartUpload(ctx, "app")
	s.AppendUpload(ctx, "app", u.ID, -1, strings.NewReader("abc"))
	if _, err := s.CommitUpload(ctx, "app", u.ID, digest.SHA512.FromString("abc")); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidNamesAndIDs(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	for _, name := range []string{"../x", "a/../b", "A", "a//b", "/a", "a/", "_x", "a/_blobs"} {
		if _, err := s.StartUpload(ctx, name); !errdefs.IsInvalidArgument(err) {
			t.Errorf("StartUpload(%q): %v, want invalid argument", name, err)
		}
	}
	for _, id := range []string{"../../etc", "", strings.Repeat("a", 32) + "/x"} {
		if _, err := s.UploadStatus(ctx, "a", id); !errdefs.IsNotFound(err) {
			t.Errorf("UploadStatus(%q): %v, want not found", id, err)
		}
	}
}

type testManifest struct {
	SchemaVersion int                 `json:"schemaVersion"`
	MediaType     string              `json:"mediaType"`
	Config        *map[string]any     `json:"config,omitempty"`
	Layers        []map[string]any    `json:"layers,omitempty"`
	Manifests     []map[string]any    `json:"manifests,omitempty"`
	Subject       map[string]any      `json:"subject,omitempty"`
	Annotations   map[string]string   `json:"annotations,omitempty"`
	Extra         map[string][]string `json:"extra,omitempty"`
}

func desc(d digest.Digest) map[string]any {
	return map[string]any{"mediaType": "application/octet-stream", "digest": d, "size": 1}
}

// putImage stores an image manifest over config and layers and returns its digest.
func putImage(t *testing.T, s *Store, name, tag string, config digest.Digest, layers ...digest.Digest) digest.Digest {
	t.Helper()
	c := desc(config)
	m := testManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json", Config: &c}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc(l))
	}
	b, _ := json.Marshal(m)
	d := digest.FromBytes(b)
	req := PutRequest{Manifest: Manifest{Digest: d, MediaType: m.MediaType, Content: b}, Blobs: append([]digest.Digest{config}, layers...)}
	if tag != "" {
		req.Tags = []string{tag}
	}
	if err := s.PutManifest(context.Background(), name, req); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPutManifestRefusesMissingBlobs(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	cfg := put(t, s, "app", []byte("{}"))
	missing := digest.FromString("missing")
	b := []byte(`{"schemaVersion":2}`)
	err := s.PutManifest(ctx, "app", PutRequest{
		Manifest: Manifest{Digest: digest.FromBytes(b), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: b},
		Blobs:    []digest.Digest{cfg, missing}, Tags: []string{"v1"},
	})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("manifest over a missing blob: %v", err)
	}
	if _, err := s.Resolve(ctx, "app", "v1"); !errdefs.IsNotFound(err) {
		t.Fatalf("tag stored for a refused manifest: %v", err)
	}
	// A blob of another repository is not enough.
	other := put(t, s, "other", []byte("layer"))
	err = s.PutManifest(ctx, "app", PutRequest{
		Manifest: Manifest{Digest: digest.FromBytes(b), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: b},
		Blobs:    []digest.Digest{cfg, other},
	})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("manifest over another repository's blob: %v", err)
	}
}

func TestGC(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := context.Background()
	cfg := put(t, s, "app", []byte(`{"config":1}`))
	keep := put(t, s, "app", []byte("kept layer"))
	old := put(t, s, "app", []byte("old layer"))
	stray := put(t, s, "app", []byte("never referenced"))
	tagged := putImage(t, s, "app", "v1", cfg, keep)
	untagged := putImage(t, s, "app", "", cfg, old)

	dry, err := s.GC(ctx, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Manifests) != 1 || len(dry.Blobs) != 3 { // untagged manifest, old layer, stray
		t.Fatalf("dry run: %+v", dry)
	}
	if _, err := s.GetManifest(ctx, "app", untagged.String()); err != nil {
		t.Fatalf("dry run removed a manifest: %v", err)
	}

	rep, err := s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifests) != 1 || rep.Manifests[0] != "app@"+untagged.String() {
		t.Errorf("removed manifests %v, want the untagged one", rep.Manifests)
	}
	removed := map[digest.Digest]bool{}
	for _, d := range rep.Blobs {
		removed[d] = true
	}
	if !removed[old] || !removed[stray] || !removed[untagged] || len(removed) != 3 {
		t.Errorf("removed blobs %v, want old layer, stray blob and the untagged manifest", rep.Blobs)
	}
	for _, d := range []digest.Digest{cfg, keep} {
		if _, err := s.StatBlob(ctx, "app", d); err != nil {
			t.Errorf("kept blob %s: %v", d, err)
		}
	}
	if _, err := s.GetManifest(ctx, "app", "v1"); err != nil {
		t.Errorf("tagged manifest %s: %v", tagged, err)
	}
}

// GC with a grace period never takes what a push in progress just wrote,
// and runs while clients push.
func TestGCWhileServing(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.GC(ctx, GCOptions{Grace: time.Minute}); err != nil {
				t.Errorf("gc: %v", err)
				return
			}
		}
	}()
	for i := range 50 {
		cfg := put(t, s, "app", []byte(`{"n":`+string(rune('0'+i%10))+`}`))
		layer := put(t, s, "app", bytes.Repeat([]byte{byte(i)}, 1000))
		putImage(t, s, "app", "", cfg, layer) // untagged, but young
	}
	close(stop)
	wg.Wait()
	// With no grace, everything untagged goes.
	rep, err := s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifests) != 50 {
		t.Fatalf("gc after the pushes removed %d manifests, want 50", len(rep.Manifests))
	}
}
