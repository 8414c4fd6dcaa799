// Package imagegen writes the images berth's benchmarks load and unpack:
// layers of random, incompressible files, drawn from a seeded generator so
// that the same parameters always give the same bytes (and so the same
// digests), packed as rootfs tarballs and as docker-archive files that
// `docker load`, `podman load` and `berth load` accept.
package imagegen

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// Layer describes one generated layer: Files files of FileSize random bytes
// each, under /data/<layer index>/.
type Layer struct {
	Files    int
	FileSize int64
}

// Spec describes a generated image.
type Spec struct {
	// Ref is the name the archive tags the image with (docker.io/library/x:y
	// style, fully qualified).
	Ref string
	// Seed makes the content: the same seed gives the same bytes.
	Seed uint64
	// Layers are the image's layers, bottom first.
	Layers []Layer
}

// epoch is the modification time of every generated entry.
var epoch = time.Unix(0, 0)

// WriteLayer writes layer number index of spec as an uncompressed tar to w,
// and returns its diffID (the sha256 of the bytes written).
func WriteLayer(w io.Writer, spec Spec, index int) (string, error) {
	h := sha256.New()
	if err := writeLayer(io.MultiWriter(w, h), spec, index); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func writeLayer(w io.Writer, spec Spec, index int) error {
	l := spec.Layers[index]
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[0:], spec.Seed)
	binary.LittleEndian.PutUint64(seed[8:], uint64(index))
	rnd := rand.NewChaCha8(seed)

	tw := tar.NewWriter(w)
	dirs := []string{"data/", fmt.Sprintf("data/%d/", index)}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for i := range l.Files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     fmt.Sprintf("data/%d/%04d.bin", index, i),
			Mode:     0o644,
			Size:     l.FileSize,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, rnd, l.FileSize); err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteDockerArchive writes spec as a docker-archive (the format of
// `docker save`) to path, unless path already holds that very archive, as a
// stamp file beside it says. It writes to a temporary file first, so a
// reader never sees half an archive.
func WriteDockerArchive(path string, spec Spec) error {
	return writeOnce(path, spec, "docker-archive", func(w io.Writer, tmpDir string) error {
		return writeDockerArchive(w, tmpDir, spec)
	})
}

// WriteRootfs writes the first layer of spec, alone, as a rootfs tarball to
// path (for `import`), unless path already holds it.
func WriteRootfs(path string, spec Spec) error {
	return writeOnce(path, spec, "rootfs", func(w io.Writer, _ string) error {
		_, err := WriteLayer(w, spec, 0)
		return err
	})
}

// writeOnce runs write into a temporary file renamed to path, unless the
// stamp beside path says path was written from the same spec and kind.
func writeOnce(path string, spec Spec, kind string, write func(w io.Writer, tmpDir string) error) error {
	key, err := json.Marshal(struct {
		Kind string
		Spec Spec
	}{kind, spec})
	if err != nil {
		return err
	}
	stamp := path + ".stamp"
	if b, err := os.ReadFile(stamp); err == nil && string(b) == string(key) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmpDir, err := os.MkdirTemp(dir, ".gen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	f, err := os.Create(filepath.Join(tmpDir, "out"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := write(f, tmpDir); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return os.WriteFile(stamp, key, 0o644)
}

// writeDockerArchive writes the layers to files in tmpDir (their sizes go in
// the archive's headers before their content), then the archive:
// <diffID hex>.tar per layer, <config digest hex>.json and manifest.json, the
// parts of what docker save writes that loaders read.
func writeDockerArchive(w io.Writer, tmpDir string, spec Spec) error {
	var layerFiles, diffIDs []string
	for i := range spec.Layers {
		p := filepath.Join(tmpDir, fmt.Sprintf("layer-%d.tar", i))
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		diffID, err := WriteLayer(f, spec, i)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		layerFiles = append(layerFiles, p)
		diffIDs = append(diffIDs, diffID)
	}

	type history struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}
	config := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config":       map[string]any{"Cmd": []string{"sh"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	var hist []history
	for i, l := range spec.Layers {
		hist = append(hist, history{
			Created:   epoch.UTC().Format(time.RFC3339),
			CreatedBy: fmt.Sprintf("imagegen layer %d: %d files of %d bytes", i, l.Files, l.FileSize),
		})
	}
	config["history"] = hist
	configJSON, err := json.Marshal(config)
	if err != nil {
		return err
	}
	configName := hexDigest(sha256.New(), configJSON) + ".json"

	tw := tar.NewWriter(w)
	var layerNames []string
	for i, p := range layerFiles {
		name := diffIDs[i][len("sha256:"):] + ".tar"
		if err := addFile(tw, name, p); err != nil {
			return err
		}
		layerNames = append(layerNames, name)
	}
	if err := addBytes(tw, configName, configJSON); err != nil {
		return err
	}
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   configName,
		"RepoTags": []string{spec.Ref},
		"Layers":   layerNames,
	}})
	if err != nil {
		return err
	}
	if err := addBytes(tw, "manifest.json", manifest); err != nil {
		return err
	}
	return tw.Close()
}

func hexDigest(h hash.Hash, b []byte) string {
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func addBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func addFile(tw *tar.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: fi.Size(), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	return nil
}
