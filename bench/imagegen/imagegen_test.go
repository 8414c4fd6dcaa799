package imagegen

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

var small = Spec{
	Ref:    "localhost/bench/small:test",
	Seed:   7,
	Layers: []Layer{{Files: 2, FileSize: 1000}, {Files: 1, FileSize: 10}},
}

func TestDockerArchiveIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	for _, p := range []string{a, b} {
		if err := WriteDockerArchive(p, small); err != nil {
			t.Fatal(err)
		}
	}
	ab, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, bb) {
		t.Error("the same spec gave two different archives")
	}

	files := readTar(t, ab)
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 2 || manifest[0].RepoTags[0] != small.Ref {
		t.Fatalf("manifest.json = %+v", manifest)
	}
	var config struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		t.Fatalf("config: %v", err)
	}
	for i, l := range manifest[0].Layers {
		if files[l] == nil {
			t.Errorf("layer %s missing", l)
		}
		if want := "sha256:" + l[:64]; config.RootFS.DiffIDs[i] != want {
			t.Errorf("diffID %d = %s, want %s", i, config.RootFS.DiffIDs[i], want)
		}
	}
}

func TestLayersDiffer(t *testing.T) {
	var l0, l1 bytes.Buffer
	d0, err := WriteLayer(&l0, small, 0)
	if err != nil {
		t.Fatal(err)
	}
	other := small
	other.Seed++
	d1, err := WriteLayer(&l1, other, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d0 == d1 {
		t.Error("different seeds gave the same layer")
	}
}

func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
}
