package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
)

// ExportImage writes a built image as an archive: "docker" is what Save
// writes (docker load reads it), naming the image with tags (or, with
// none, by its ID); "oci" is an OCI image layout tarball (oci-layout,
// index.json, blobs/), each tag an org.opencontainers.image.ref.name of
// the index, as BuildKit's oci exporter writes it.
func (b *BuildBackend) ExportImage(ctx context.Context, id digest.Digest, tags []string, format string, w io.Writer) error {
	e := b.e
	switch format {
	case "docker":
		names := tags
		if len(names) == 0 {
			names = []string{id.String()}
		}
		return e.Save(ctx, w, names)
	case "oci":
	default:
		return errdefs.InvalidArgument("export: unknown format %q", format)
	}
	db, err := e.images.Load(ctx)
	if err != nil {
		return err
	}
	rec, err := db.Resolve(id.String())
	if err != nil {
		return err
	}
	mb, err := e.content.ReadAll(ctx, rec.Manifest.Digest, image.MaxManifestSize)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	m, err := image.ParseManifest(mb)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	tw := tar.NewWriter(w)
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := writeExportFile(tw, ocispec.ImageLayoutFile, layout); err != nil {
		return err
	}
	written := map[digest.Digest]bool{}
	for _, d := range append([]ocispec.Descriptor{rec.Manifest, m.Config}, m.Layers...) {
		if written[d.Digest] {
			continue
		}
		written[d.Digest] = true
		if err := e.writeBlob(ctx, tw, d.Digest); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, t := range tags {
		tag, err := image.ParseTag(t)
		if err != nil {
			return err
		}
		d := rec.Manifest
		d.Annotations = map[string]string{"io.containerd.image.name": tag.String(), ocispec.AnnotationRefName: tagOf(tag.String())}
		idx.Manifests = append(idx.Manifests, d)
	}
	if len(idx.Manifests) == 0 {
		idx.Manifests = []ocispec.Descriptor{rec.Manifest}
	}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := writeExportFile(tw, "index.json", ib); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func writeExportFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(fileHeader(name, int64(len(b)))); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}
