// Package backend is what a build needs of the engine that runs it (the
// Backend interface) and the types that cross it: layers, images, RUN
// processes, writable snapshots. It is apart from package build, which
// holds the Dockerfile frontend and its dependencies, so that the engine
// implements it without linking them.
package backend

import (
	"context"
	"io"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/image"
)

// Layer is one layer of an image being built: its uncompressed digest
// and its blob in the content store.
type Layer struct {
	DiffID digest.Digest      `json:"diffID"`
	Blob   ocispec.Descriptor `json:"blob"`
}

// Image is a local image a stage starts from or copies from.
type Image struct {
	ID     digest.Digest
	Config *image.Config
	Layers []Layer
}

// Process is the process of one RUN step.
type Process struct {
	Args []string
	Env  []string
	// Cwd is the working directory, User the USER in effect (name or
	// number, with an optional group), both as the image config says.
	Cwd, User string
	// Mounts are the RUN step's --mount's and the /etc files, in the
	// runtime spec's form.
	Mounts []specs.Mount
	// Network is "default", "none" or "host".
	Network string
	// Stdin, when not nil, is the process's standard input.
	Stdin          *os.File
	Stdout, Stderr *os.File
}

// Snapshot is a writable root file system over a chain of layers,
// mounted at Root.
type Snapshot interface {
	Root() string
	// Commit writes what changed under Root as a new layer; ok is false
	// when nothing did. With epoch set, every time in the layer later
	// than it is clamped to it.
	Commit(ctx context.Context, epoch *time.Time) (l Layer, ok bool, err error)
	// Release unmounts and removes the snapshot.
	Release(ctx context.Context) error
}

// Backend is what a build needs of the engine: images, layers, writable
// snapshots and the runtime. Whatever it creates stays protected from
// garbage collection until the build ends.
type Backend interface {
	// Image resolves a local image by name or ID.
	Image(ctx context.Context, name string) (*Image, error)
	// Prepare makes a writable snapshot over layers (none for scratch).
	Prepare(ctx context.Context, layers []Layer) (Snapshot, error)
	// Run runs p with root as its root file system, to its end, and
	// returns its exit status.
	Run(ctx context.Context, root string, p Process) (int, error)
	// StoreImage records the image made of cfg and layers and tags it
	// with every name of tags, all at once, and returns its ID.
	StoreImage(ctx context.Context, cfg *image.Config, layers []Layer, tags []string) (digest.Digest, error)
	// Pull asks the image's registry for the newest image of name and
	// stores it (--pull).
	Pull(ctx context.Context, name string) error
	// Stack makes sure the snapshot of every prefix of layers exists,
	// unpacking the layers from their blobs where one is missing: a
	// COPY --link layer, made on its own, joins the stage's stack so.
	Stack(ctx context.Context, layers []Layer) error
	// ExportImage writes the stored image id as an archive of format
	// "docker" (what docker load reads) or "oci" (an OCI image layout),
	// naming it with tags.
	ExportImage(ctx context.Context, id digest.Digest, tags []string, format string, w io.Writer) error
}
