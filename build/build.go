// Package build turns a Dockerfile and its context into an image, as
// `docker build` does.
//
// The Dockerfile is read with BuildKit's own parser, instructions and shell
// packages, so escapes, line continuations, heredocs, directives and
// variable expansion behave exactly as Docker's. Each stage is a list of
// steps; stages the target does not need are skipped and the others run
// in parallel, each waiting only for the stages it copies or mounts from.
//
// Every step has a cache key: the hash of its parent's key (or of the base
// image's ID), of the instruction with every value it uses (the expanded
// arguments, the environment and build arguments in scope, the user and
// the working directory) and, for COPY and ADD, of the content and
// metadata of its sources — never their modification times. A step whose
// key has a cache record is not run again: the record holds the state
// after it (the image configuration and the layers), see package build/cache.
//
// The package owns the build's logic; what touches the store and the
// kernel (images, layers, writable snapshots, the runtime) is the
// Backend's, which package engine implements.
package build

import (
	"context"
	"io"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/build/cache"
	"github.com/berth-dev/berth/image"
)

// Layer is one layer of an image being built: its uncompressed digest
// and its blob in the content store.
type Layer = cache.Layer

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

// Output says where a build's result goes, as docker build --output
// does. The zero value stores the image and tags it.
type Output struct {
	// Type is "image" (the default), "docker" or "oci" (an image
	// archive, the image being stored as well), "local" (the final
	// stage's files written into the directory Dest) or "tar" (those
	// files as a tar archive).
	Type string
	// Dest is the directory (local) or the file (tar, docker, oci); "-"
	// writes the archive to W.
	Dest string
	W    io.Writer
}

// Options are a build's inputs.
type Options struct {
	// ContextDir is the build context; "" for none.
	ContextDir string
	// Dockerfile is the Dockerfile's text; DockerfileName names it in
	// messages ("Dockerfile" when empty).
	Dockerfile     []byte
	DockerfileName string
	// Ignore are the .dockerignore patterns.
	Ignore []string
	// Tags name the image; none leaves it untagged.
	Tags []string
	// Target is the stage to build; the last when empty.
	Target string
	// BuildArgs are --build-arg's: a nil value takes the value from the
	// environment of the build (as docker does for `--build-arg NAME`).
	BuildArgs map[string]string
	// Labels are added to the image's.
	Labels map[string]string
	// NoCache runs every step, ignoring (and then replacing) the cache.
	NoCache bool
	// Secrets map a secret's id to the host file holding it.
	Secrets map[string]string
	// Epoch, when set (SOURCE_DATE_EPOCH), is every time the image
	// records, and clamps the times of the files in its new layers.
	Epoch *time.Time
	// Progress receives the progress lines; nil for none. With TTY set
	// it is a terminal, and gets the live display redrawn in place.
	Progress io.Writer
	TTY      bool
	// Output is where the result goes.
	Output Output
	// Pull asks the registry for every base image before using it, as
	// docker build --pull: a registry that cannot be reached fails the
	// build, even when the image is in the store.
	Pull bool
	// Cache is where step results are kept between builds.
	Cache *cache.Cache
}

// Result is what a build made.
type Result struct {
	ID digest.Digest
	// Steps and Cached count the steps of the stages built and how many
	// of them came from the cache.
	Steps, Cached int
}
