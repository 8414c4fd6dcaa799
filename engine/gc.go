package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/internal/lease"
)

// gcReport says what a collection removed.
type gcReport struct {
	Blobs, Layers int
	Reclaimed     int64
}

// gc removes every blob and layer snapshot that no image, container or live
// lease reaches. It is the one place where stored data is deleted: a failed
// operation releases its lease and lets gc remove what it made, so that two
// processes sharing a blob never delete it from under each other.
//
// Order matters against concurrent writers, which record a resource in their
// lease before creating it and release the lease only after an image
// references it: gc lists what exists first, then reads the leases, then the
// image records. Whatever was created after the listing is not a candidate;
// whatever existed before is seen in a lease or in a record.
func (e *Engine) gc(ctx context.Context) (gcReport, error) {
	var rep gcReport
	l, err := fsutil.LockFile(e.gcLock())
	if err != nil {
		return rep, err
	}
	defer l.Unlock()

	blobs := map[digest.Digest]int64{}
	err = e.content.Walk(ctx, func(i content.Info) error {
		blobs[i.Digest] = i.Size
		return nil
	})
	if err != nil {
		return rep, err
	}
	layers, err := e.snaps.Layers(ctx)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	leased, err := lease.Active(e.leaseDir())
	if err != nil {
		return rep, err
	}
	keepBlob := map[digest.Digest]bool{}
	keepLayer := map[digest.Digest]bool{}
	for _, d := range leased.Blobs {
		keepBlob[d] = true
	}
	for _, d := range leased.Layers {
		keepLayer[d] = true
	}
	// The build cache's records keep their layers (engine/build.go); read
	// after the leases, as a build writes its records before releasing.
	if err := e.keepBuildCache(ctx, keepBlob, keepLayer); err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	db, err := e.images.Load(ctx)
	if err != nil {
		return rep, err
	}
	for _, r := range db.Images {
		keepBlob[r.ID] = true
		keepBlob[r.Manifest.Digest] = true
		mb, err := e.content.ReadAll(ctx, r.Manifest.Digest, image.MaxManifestSize)
		if err != nil {
			return rep, fmt.Errorf("gc: image %s: %w", r.ID.Encoded()[:12], err)
		}
		m, err := image.ParseManifest(mb)
		if err != nil {
			return rep, fmt.Errorf("gc: image %s: %w", r.ID.Encoded()[:12], err)
		}
		for _, d := range m.Layers {
			keepBlob[d.Digest] = true
		}
		for _, c := range image.ChainIDs(r.DiffIDs) {
			keepLayer[c] = true
		}
	}
	actives, err := e.snaps.Actives(ctx)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	parent := map[digest.Digest]digest.Digest{}
	for _, li := range layers {
		parent[li.ChainID] = li.Parent
	}
	for _, a := range actives {
		keepLayer[a.Parent] = true
	}
	// A kept layer keeps its ancestors.
	for c := range keepLayer {
		for p := parent[c]; p != "" && !keepLayer[p]; p = parent[p] {
			keepLayer[p] = true
		}
	}

	for d, size := range blobs {
		if keepBlob[d] {
			continue
		}
		if err := e.content.Delete(ctx, d); err != nil {
			return rep, err
		}
		rep.Blobs++
		rep.Reclaimed += size
	}
	// Remove layers children first: repeat while progress is made.
	pending := map[digest.Digest]int64{}
	for _, li := range layers {
		if !keepLayer[li.ChainID] {
			pending[li.ChainID] = li.Size
		}
	}
	inUse := map[digest.Digest]bool{}
	for len(pending) > 0 {
		progress := false
		for c, size := range pending {
			hasChild := false
			for other := range pending {
				if parent[other] == c {
					hasChild = true
					break
				}
			}
			if hasChild || inUse[c] {
				continue
			}
			err := e.snaps.RemoveLayer(ctx, c)
			if errdefs.IsInUse(err) {
				// Made a parent since listed (a container's writable layer
				// on an init layer): it stays, and with it its ancestors.
				inUse[c] = true
				continue
			}
			if err != nil {
				return rep, fmt.Errorf("gc: %w", err)
			}
			delete(pending, c)
			rep.Layers++
			rep.Reclaimed += size
			progress = true
		}
		if !progress {
			break
		}
	}
	e.content.CleanIngest(ctx, 24*time.Hour)
	return rep, nil
}
