package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/registry"
)

const noteType = "application/vnd.berth.test.note"

// addArtifact adds to the OCI layout dir an artifact (an image manifest
// with an artifactType, the empty config and one text/plain layer) whose
// subject is the manifest tagged subjectTag, tags it tag, and returns the
// digests of the artifact and of its subject.
func addArtifact(t *testing.T, dir, subjectTag, tag string) (art, subject digest.Digest) {
	t.Helper()
	var top struct {
		SchemaVersion int              `json:"schemaVersion"`
		Manifests     []map[string]any `json:"manifests"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	var subj map[string]any
	for _, m := range top.Manifests {
		if a, _ := m["annotations"].(map[string]any); a["org.opencontainers.image.ref.name"] == subjectTag {
			subj = map[string]any{"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"]}
		}
	}
	if subj == nil {
		t.Fatalf("no manifest tagged %s in %s", subjectTag, b)
	}
	write := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	empty := []byte("{}")
	note := []byte("signed: berth interop test\n")
	mJSON, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  noteType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": write(empty), "size": len(empty)},
		"layers":        []any{map[string]any{"mediaType": "text/plain", "digest": write(note), "size": len(note)}},
		"subject":       subj,
		"annotations":   map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
	})
	art = write(mJSON)
	top.Manifests = append(top.Manifests, map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": art, "size": len(mJSON),
		"artifactType": noteType, "annotations": map[string]string{"org.opencontainers.image.ref.name": tag},
	})
	b, _ = json.Marshal(top)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := subj["digest"].(string)
	return art, digest.Digest(d)
}

// referrers returns the descriptors the referrers API lists for subject,
// filtered by artifactType when it is not empty.
func referrers(t *testing.T, client *http.Client, base, repo string, subject digest.Digest, artifactType string) []map[string]any {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/referrers/%s", base, repo, subject)
	if artifactType != "" {
		url += "?artifactType=" + artifactType
	}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	if artifactType != "" && resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("GET %s: OCI-Filters-Applied %q", url, resp.Header.Get("OCI-Filters-Applied"))
	}
	var idx struct{ Manifests []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return idx.Manifests
}

// TestSkopeoArtifactWithSubject: skopeo pushes an image and an artifact
// whose subject is that image from an OCI layout; the referrers API lists
// the artifact (with artifactType filtering); skopeo pulls the artifact
// back byte for byte.
func TestSkopeoArtifactWithSubject(t *testing.T) {
	if testing.Short() {
		t.Skip("interop: skipped with -short")
	}
	need(t, "skopeo", "skopeo")
	addr := serve(t, registry.Config{})
	src, _ := layout(t)
	art, subject := addArtifact(t, src, "single", "note")
	ref := "docker://" + addr + "/interop/artifact"
	// --preserve-digests: no compression of the uncompressed layers on the
	// way, so the subject keeps the digest the artifact names.
	skopeo(t, "copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+src+":single", ref+":single")
	skopeo(t, "copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+src+":note", ref+":note")

	base := "http://" + addr
	got := referrers(t, http.DefaultClient, base, "interop/artifact", subject, "")
	if len(got) != 1 || got[0]["digest"] != art.String() || got[0]["artifactType"] != noteType {
		t.Fatalf("referrers of %s: %v, want %s of type %s", subject, got, art, noteType)
	}
	if got := referrers(t, http.DefaultClient, base, "interop/artifact", subject, noteType); len(got) != 1 {
		t.Fatalf("referrers of %s with artifactType %s: %v", subject, noteType, got)
	}
	if got := referrers(t, http.DefaultClient, base, "interop/artifact", subject, "application/vnd.other"); len(got) != 0 {
		t.Fatalf("referrers of %s with another artifactType: %v", subject, got)
	}

	dst := t.TempDir()
	skopeo(t, "copy", "--src-tls-verify=false", "--preserve-digests", ref+":note", "oci:"+dst+":note")
	var top struct {
		Manifests []struct{ Digest digest.Digest }
	}
	b, _ := os.ReadFile(filepath.Join(dst, "index.json"))
	json.Unmarshal(b, &top)
	if len(top.Manifests) != 1 || top.Manifests[0].Digest != art {
		t.Fatalf("pulled %s, want the artifact %s", b, art)
	}
	mb, err := os.ReadFile(filepath.Join(dst, "blobs", "sha256", art.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ArtifactType string
		Subject      struct{ Digest digest.Digest }
	}
	if err := json.Unmarshal(mb, &m); err != nil || m.ArtifactType != noteType || m.Subject.Digest != subject {
		t.Fatalf("pulled artifact manifest %s (%v)", mb, err)
	}
}
