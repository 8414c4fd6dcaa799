package storage

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// GCOptions configure a garbage collection.
type GCOptions struct {
	Grace     time.Duration
	UploadTTL time.Duration
	DryRun    bool
}

// GCReport says what a collection removed (or would remove).
type GCReport struct {
	Manifests []string
	Blobs     []digest.Digest
	Uploads   int
	Bytes     int64
}

// GC collects garbage.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	return GCReport{}, nil
}
