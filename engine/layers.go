package engine

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/lease"
)

// UnpackLayer makes sure the snapshot of one layer exists on top of parent,
// unpacking it from the layer file at path when it does not. diffID is what
// the image config says the uncompressed layer hashes to; the unpacked
// stream must agree, or nothing is kept. It returns the chain ID and the
// layer's unpacked size.
func (e *Engine) UnpackLayer(ctx context.Context, l *lease.Lease, parent, diffID digest.Digest, path string) (digest.Digest, int64, error) {
	chain := diffID
	if parent != "" {
		chain = digest.FromString(parent.String() + " " + diffID.String())
	}
	// Lease first, even a layer that exists: a concurrent collection must
	// not remove it before our image references it.
	if err := l.AddLayers(chain); err != nil {
		return "", 0, err
	}
	if info, err := e.snaps.Stat(ctx, chain); err == nil {
		return chain, info.Size, nil
	}
	info, err := e.snaps.CreateLayer(ctx, chain, parent, func(dir string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		res, err := archive.Apply(ctx, dir, f, archive.ApplyOptions{Whiteouts: e.snaps.WhiteoutMode()})
		if err != nil {
			return err
		}
		if res.DiffID != diffID {
			return errdefs.DataCorrupt("layer diff ID mismatch: the image config says %s, the layer is %s", diffID, res.DiffID)
		}
		return nil
	})
	if errdefs.IsAlreadyExists(err) {
		info, err = e.snaps.Stat(ctx, chain)
	}
	if err != nil {
		return "", 0, fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	return chain, info.Size, nil
}

// diffIDOf hashes the uncompressed content of a layer file.
func diffIDOf(path string) (digest.Digest, archive.Compression, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	r, comp, err := archive.DecompressStream(f)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	h := digest.SHA256.Digester()
	if _, err := io.Copy(h.Hash(), r); err != nil {
		return "", 0, errdefs.DataCorrupt("read layer: %v", err)
	}
	return h.Digest(), comp, nil
}

// compressionOf detects how a layer file is compressed.
func compressionOf(path string) (archive.Compression, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, comp, err := archive.DecompressStream(f)
	if err != nil {
		return 0, err
	}
	r.Close()
	return comp, nil
}
