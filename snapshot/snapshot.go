// Package snapshot owns the unpacked layers and the containers' root
// filesystems built from them.
//
// A layer is unpacked once into a read-only directory keyed by its chain ID
// (the OCI image-spec identity of the layer together with every layer below
// it) and shared by every image and container that uses it. A container's
// root filesystem is an active snapshot: a writable directory on top of a
// chain of layers. The snapshotter does not mount anything itself: Prepare
// and Mounts return the mounts to make, and MountAll makes them, so that the
// runtime can mount inside the container's own mount namespace.
//
// Two drivers implement Snapshotter. "overlay" keeps in each layer directory
// only what the layer adds and mounts an overlayfs of the chain; "native"
// keeps in each layer directory a full copy of the tree and bind mounts a
// full copy for each container, for kernels or filesystems where overlayfs
// is not available.
//
// The store is safe for many processes at once: metadata is written as small
// JSON files published by rename, and changes to what refers to what are
// made under a file lock.
package snapshot

import (
	"context"
	"io/fs"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/archive"
)

// Mount is one mount to make, as mount(8) would take it.
type Mount struct {
	// Type is the filesystem type, or "bind".
	Type string
	// Source is the device or directory.
	Source string
	// Options are mount(8) options: flags (ro, nosuid, rbind, ...) and
	// filesystem data (lowerdir=..., ...). The data may be longer than the
	// one page mount(2) accepts: MountAll knows how to mount it.
	Options []string
}

// Info describes a committed layer snapshot.
type Info struct {
	ChainID digest.Digest
	// Parent is the chain ID of the layer below, or "" for a base layer.
	Parent digest.Digest
	// Size is the disk space the layer's directory used when it was
	// created, in bytes.
	Size    int64
	Created time.Time
}

// Active describes a writable snapshot: a container's root filesystem.
type Active struct {
	Key string
	// Parent is the chain ID of the top layer below it, or "" for none.
	Parent  digest.Digest
	Created time.Time
}

// Snapshotter keeps layers and writable snapshots on top of them.
type Snapshotter interface {
	// Driver returns the name of the driver: "overlay" or "native".
	Driver() string
	// WhiteoutMode says in what form archive.Apply must write the whiteouts
	// of a layer for this driver.
	WhiteoutMode() archive.WhiteoutMode

	// CreateLayer makes the committed, read-only snapshot chainID on top of
	// parent ("" for a base layer). It calls fill with a fresh private
	// directory (empty for overlay; a full copy of parent for native) for
	// fill to populate, normally with archive.Apply, then syncs it and
	// publishes it atomically. If the snapshot already exists, or another
	// process published it first, CreateLayer returns an error of class
	// errdefs.ErrAlreadyExists, which callers treat as success. A failing
	// fill leaves nothing behind. The parent must exist
	// (errdefs.ErrNotFound otherwise).
	CreateLayer(ctx context.Context, chainID, parent digest.Digest, fill func(dir string) error) (Info, error)
	// Stat describes the layer chainID (errdefs.ErrNotFound if there is
	// none).
	Stat(ctx context.Context, chainID digest.Digest) (Info, error)
	// Layers lists the layers.
	Layers(ctx context.Context) ([]Info, error)
	// RemoveLayer removes the layer chainID. It refuses, with an error of
	// class errdefs.ErrInUse, while a layer or an active snapshot has it as
	// parent.
	RemoveLayer(ctx context.Context, chainID digest.Digest) error

	// Prepare makes the writable snapshot key on top of the layer parent
	// ("" for an empty root) and returns the mounts that make its root
	// filesystem. A key in use gives errdefs.ErrAlreadyExists.
	Prepare(ctx context.Context, key string, parent digest.Digest) ([]Mount, error)
	// Mounts returns the mounts of the writable snapshot key again.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Actives lists the writable snapshots.
	Actives(ctx context.Context) ([]Active, error)
	// Remove removes the writable snapshot key, which the caller has
	// unmounted.
	Remove(ctx context.Context, key string) error
	// MakeSpares makes, while nothing waits for it, the empty writable
	// snapshots that later Prepares take instead of making their own
	// (overlay; a no-op for native, whose writable snapshots are copies).
	// A Remove keeps an unchanged one as a spare too.
	MakeSpares(ctx context.Context) error
	// Discard is Remove in two steps: the snapshot is gone from the store
	// when Discard returns, and its files once purge has run (a crash in
	// between leaves them as garbage that a later listing of the active
	// snapshots deletes).
	Discard(ctx context.Context, key string) (purge func() error, err error)
	// UpperDir returns the directory holding the changes made in the
	// writable snapshot key: the overlay upper directory (see archive.Diff),
	// or for native the whole root filesystem.
	UpperDir(ctx context.Context, key string) (string, error)
	// UpperDirOf is where UpperDir is for key, whether or not key exists
	// yet.
	UpperDirOf(key string) string
	// Changes returns what the writable snapshot key changed over its
	// parent, in an overlay upper directory (see Changes).
	Changes(ctx context.Context, key string) (Changes, error)

	// Lookup describes path (slash-separated, relative to the root) as it
	// is in the root filesystem of the layer chainID with every layer
	// below it: an entry deleted by an upper layer's whiteout, or hidden
	// by an opaque directory, is not there (an error matching
	// fs.ErrNotExist). Symbolic links along the path are not followed:
	// one before the last element gives an error of class
	// errdefs.ErrInvalidArgument.
	Lookup(ctx context.Context, chainID digest.Digest, path string) (fs.FileInfo, error)

	// Usage returns the disk space the directory of the layer chainID uses
	// now, in bytes.
	Usage(ctx context.Context, chainID digest.Digest) (int64, error)
}

// Changes are what a writable snapshot changed over its parent, laid out as
// an overlay upper directory: every added or changed entry, with its
// parent directories, and a whiteout (a 0/0 character device) for every
// deleted one, which is what archive.Diff makes a layer of.
type Changes struct {
	// Upper is that directory.
	Upper string
	// Lowers are the directories of the parent's layers, top first: an
	// entry of Upper that one of them has is a change, not an addition.
	Lowers []string
	// Release frees what Changes made; Upper is gone after it.
	Release func()
}
