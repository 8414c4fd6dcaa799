package engine

import (
	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/lease"
	"github.com/berth-dev/berth/snapshot"
)

// The engine's parts, for the packages that add operations to it whose
// dependencies the lifecycle commands should not load: engine/transfer
// (pull and push, over go-containerregistry and net/http) and package
// build's Dockerfile frontend (over BuildKit's parser). Every berth
// process pays for the packages it links when it starts; `berth run`
// links neither (see cmd/berth).

// ContentStore is the engine's content store: blobs by digest.
func (e *Engine) ContentStore() *content.Store { return e.content }

// ImageStore is the engine's image store: records, tags and digests.
func (e *Engine) ImageStore() *image.Store { return e.images }

// Snapshotter is the engine's snapshotter: the unpacked layers.
func (e *Engine) Snapshotter() snapshot.Snapshotter { return e.snaps }

// NewLease begins an operation that adds to the stores: the blobs and
// layers added to the lease are safe from garbage collection until
// EndLease, so that a concurrent rmi or prune cannot take them before an
// image references them.
func (e *Engine) NewLease() (*lease.Lease, error) { return lease.New(e.leaseDir()) }
