package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	goruntime "runtime"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/lease"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Ref tags the new image (name or name:tag); empty leaves it untagged.
	Ref string
	// Changes are Dockerfile instructions applied to the config
	// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
	Changes []string
	// Message is the history comment; Source names where the tarball came from.
	Message, Source string
}

// Import makes a one-layer image from a root file system tarball
// (uncompressed, gzip or zstd), as `docker import` does, and returns its ID.
// On any error the store is left as it was.
func (e *Engine) Import(ctx context.Context, r io.Reader, opts ImportOptions) (id digest.Digest, err error) {
	var tag string
	if opts.Ref != "" {
		t, err := image.ParseTag(opts.Ref)
		if err != nil {
			return "", err
		}
		tag = t.String()
	}
	now := time.Now().UTC()
	cfg := &image.Config{Created: &now, Architecture: goruntime.GOARCH, OS: "linux"}
	for _, c := range opts.Changes {
		if err := image.ApplyChange(cfg, c); err != nil {
			return "", err
		}
	}

	l, err := e.NewLease()
	if err != nil {
		return "", err
	}
	defer e.EndLease(ctx, l, &err)

	w, err := e.content.Writer(ctx)
	if err != nil {
		return "", err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return "", fmt.Errorf("read tarball: %w", err)
	}
	diffID, comp, err := diffIDOf(w.Path())
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	_, size, err := e.UnpackLayer(ctx, l, "", diffID, w.Path())
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	if err := l.AddBlobs(w.Digest()); err != nil {
		return "", err
	}
	layer, err := w.Commit(ctx, "")
	if err != nil {
		return "", err
	}

	comment := opts.Message
	if comment == "" {
		comment = "Imported from " + opts.Source
	}
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}
	cfg.History = []image.History{{Created: &now, CreatedBy: "berth import", Comment: comment}}
	layerDesc := ocispec.Descriptor{MediaType: ociLayerType(comp), Digest: layer.Digest, Size: layer.Size}
	rec, err := e.storeImage(ctx, l, cfg, []ocispec.Descriptor{layerDesc}, size)
	if err != nil {
		return "", err
	}
	err = e.images.Update(ctx, func(db *image.DB) error {
		db.Images[rec.ID] = rec
		if tag != "" {
			db.Tags[tag] = rec.ID
		}
		return nil
	})
	return rec.ID, err
}

// EndLease ends an operation begun with NewLease: it releases the lease
// and, if the operation failed (*errp is set), collects what it left
// unreferenced.
func (e *Engine) EndLease(ctx context.Context, l *lease.Lease, errp *error) {
	l.Release()
	if *errp != nil {
		if _, err := e.gc(context.WithoutCancel(ctx)); err != nil {
			*errp = fmt.Errorf("%w (and cleaning up: %v)", *errp, err)
		}
	}
}

// storeImage writes the config and an OCI manifest for layers (already in
// the content store) and returns the record of the new image (not yet in
// the DB).
func (e *Engine) storeImage(ctx context.Context, l *lease.Lease, cfg *image.Config, layers []ocispec.Descriptor, size int64) (*image.Record, error) {
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("write image config: %w", err)
	}
	cinfo, err := e.PutBlob(ctx, l, cb)
	if err != nil {
		return nil, err
	}
	m := image.Manifest{
		SchemaVersion: 2,
		MediaType:     ocispec.MediaTypeImageManifest,
		Config:        ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cinfo.Digest, Size: cinfo.Size},
		Layers:        layers,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("write image manifest: %w", err)
	}
	minfo, err := e.PutBlob(ctx, l, mb)
	if err != nil {
		return nil, err
	}
	rec := &image.Record{
		ID:       cinfo.Digest,
		Manifest: ocispec.Descriptor{MediaType: m.MediaType, Digest: minfo.Digest, Size: minfo.Size},
		DiffIDs:  cfg.RootFS.DiffIDs,
		Size:     size,
		Added:    time.Now().UTC(),
	}
	if cfg.Created != nil {
		rec.Created = *cfg.Created
	}
	return rec, nil
}

// PutBlob stores a small blob under the lease.
func (e *Engine) PutBlob(ctx context.Context, l *lease.Lease, b []byte) (content.Info, error) {
	d := digest.FromBytes(b)
	if err := l.AddBlobs(d); err != nil {
		return content.Info{}, err
	}
	return e.content.Ingest(ctx, bytes.NewReader(b), d)
}

func ociLayerType(c archive.Compression) string {
	switch c {
	case archive.Gzip:
		return ocispec.MediaTypeImageLayerGzip
	case archive.Zstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

func dockerLayerType(c archive.Compression) string {
	switch c {
	case archive.Gzip:
		return image.MediaTypeDockerLayerGzip
	case archive.Zstd:
		return image.MediaTypeDockerLayerZstd
	}
	return image.MediaTypeDockerLayer
}
