// Package builder is the engine's `build`: package build's Dockerfile
// frontend run on the engine's build backend, with engine/transfer
// serving --pull. It is apart from package engine so that the commands
// that only run containers do not link BuildKit's parser.
package builder

import (
	"context"

	"github.com/berth-dev/berth/build"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/engine/transfer"
)

// Build builds an image from a Dockerfile and its context, as docker
// build does, and tags it with opts.Tags once every step has succeeded:
// a failed build tags nothing. RUN steps run through berth's runtime on a
// writable snapshot of the step before; COPY and ADD write into such a
// snapshot without a process; each step's changes become a layer.
//
// The cache of step results lives under the data root's build/ (see
// package build/cache); the engine's garbage collection keeps the layers
// its records name.
func Build(ctx context.Context, e *engine.Engine, opts build.Options) (res *build.Result, err error) {
	b, err := e.BuildBackend(ctx, func(ctx context.Context, name string) error {
		_, err := transfer.Pull(ctx, e, name, transfer.PullOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	defer b.Close(ctx, &err)
	if opts.Cache, err = e.BuildCache(); err != nil {
		return nil, err
	}
	return build.Build(ctx, b, opts)
}
