package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/reference"
)

// Save writes the named images to w as one archive that both `docker load`
// and `podman load` accept: an OCI image layout (blobs/sha256/..., index.json,
// oci-layout) with a docker-archive manifest.json beside it, as docker save
// writes since version 25. Blobs are copied as stored, so every digest —
// image ID, manifest, layers — is preserved.
func (e *Engine) Save(ctx context.Context, w io.Writer, names []string) error {
	db, err := e.images.Load(ctx)
	if err != nil {
		return err
	}
	type entry struct {
		rec  *image.Record
		tags []string // normalized
	}
	var entries []*entry
	byID := map[digest.Digest]*entry{}
	for _, n := range names {
		rec, err := db.Resolve(n)
		if err != nil {
			return err
		}
		en := byID[rec.ID]
		if en == nil {
			en = &entry{rec: rec}
			byID[rec.ID] = en
			entries = append(entries, en)
		}
		// A name (not an ID) saves that tag, as docker save does.
		if ref, err := reference.ParseNormalizedNamed(n); err == nil {
			if t := reference.TagNameOnly(ref).String(); db.Tags[t] == rec.ID {
				en.tags = append(en.tags, t)
			}
		}
	}

	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	var idx ocispec.Index
	idx.SchemaVersion = 2
	idx.MediaType = ocispec.MediaTypeImageIndex
	type dockerEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	manifestJSON := []dockerEntry{}
	for _, en := range entries {
		mb, err := e.content.ReadAll(ctx, en.rec.Manifest.Digest, image.MaxManifestSize)
		if err != nil {
			return fmt.Errorf("save %s: %w", en.rec.ID.Encoded()[:12], err)
		}
		m, err := image.ParseManifest(mb)
		if err != nil {
			return fmt.Errorf("save %s: %w", en.rec.ID.Encoded()[:12], err)
		}
		de := dockerEntry{Config: blobName(m.Config.Digest), RepoTags: []string{}}
		blobs := append([]ocispec.Descriptor{en.rec.Manifest, m.Config}, m.Layers...)
		for _, d := range blobs {
			if written[d.Digest] {
				continue
			}
			if err := e.writeBlob(ctx, tw, d.Digest); err != nil {
				return fmt.Errorf("save %s: %w", en.rec.ID.Encoded()[:12], err)
			}
			written[d.Digest] = true
		}
		for _, l := range m.Layers {
			de.Layers = append(de.Layers, blobName(l.Digest))
		}
		if len(en.tags) == 0 {
			idx.Manifests = append(idx.Manifests, en.rec.Manifest)
		}
		for _, t := range en.tags {
			d := en.rec.Manifest
			d.Annotations = map[string]string{"io.containerd.image.name": t, ocispec.AnnotationRefName: tagOf(t)}
			idx.Manifests = append(idx.Manifests, d)
			de.RepoTags = append(de.RepoTags, image.Familiar(t))
		}
		manifestJSON = append(manifestJSON, de)
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"index.json", idx}, {"manifest.json", manifestJSON}, {"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(fileHeader(f.name, int64(len(b)))); err != nil {
			return fmt.Errorf("save: %w", err)
		}
		if _, err := tw.Write(b); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

func (e *Engine) writeBlob(ctx context.Context, tw *tar.Writer, d digest.Digest) error {
	f, err := e.content.Open(ctx, d)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(fileHeader(blobName(d), st.Size())); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

func blobName(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}

func fileHeader(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Size: size, Mode: 0o444, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
}

func tagOf(normalized string) string {
	ref, err := reference.ParseNormalizedNamed(normalized)
	if err != nil {
		return ""
	}
	if t, ok := ref.(reference.Tagged); ok {
		return t.Tag()
	}
	return "latest"
}
