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
// Backend's (package build/backend), which package engine implements.
package build

import (
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/build/backend"
	"github.com/berth-dev/berth/build/cache"
)

// The types that cross the Backend, defined in package build/backend so
// that the engine implements it without linking this package.
type (
	Layer    = backend.Layer
	Image    = backend.Image
	Process  = backend.Process
	Snapshot = backend.Snapshot
	Backend  = backend.Backend
)

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
