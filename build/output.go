package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
)

// CheckOutput validates an --output before the build starts, so that a
// bad one fails before any step runs.
func CheckOutput(o Output) error {
	switch o.Type {
	case "", "image":
	case "docker":
		// Without dest, docker build loads the image: the same as image.
	case "oci", "tar", "local":
		if o.Dest == "" {
			return errdefs.InvalidArgument("--output type=%s needs dest=", o.Type)
		}
		if o.Dest == "-" && o.Type == "local" {
			return errdefs.InvalidArgument("--output type=local needs a directory, not -")
		}
	default:
		return errdefs.InvalidArgument("--output: unknown type %q: want image, docker, oci, local or tar", o.Type)
	}
	if o.Dest == "-" && o.W == nil {
		return errdefs.InvalidArgument("--output dest=-: nowhere to write")
	}
	return nil
}

// export sends the final stage where out says. It returns the image's ID
// when one was stored, and otherwise the digest of its configuration.
func (bd *builder) export(ctx context.Context, cfg *image.Config, layers []Layer, out Output) (digest.Digest, error) {
	switch out.Type {
	case "local", "tar":
		return bd.exportFiles(ctx, cfg, layers, out)
	}
	v := bd.prog.vertex("exporting to image")
	id, err := bd.b.StoreImage(ctx, cfg, layers, bd.opts.Tags)
	if err != nil {
		v.fail(err)
		return "", err
	}
	v.printf("writing image %s done", id)
	for _, t := range bd.opts.Tags {
		v.printf("naming to %s done", t)
	}
	if out.Type == "docker" && out.Dest == "" {
		out.Type = "image"
	}
	if out.Type != "image" {
		v.printf("exporting to %s image format", out.Type)
		err := writeDest(out, func(w io.Writer) error {
			return bd.b.ExportImage(ctx, id, bd.opts.Tags, out.Type, w)
		})
		if err != nil {
			v.fail(err)
			return "", err
		}
		v.printf("sending tarball to %s done", out.Dest)
	}
	v.done()
	return id, nil
}

// exportFiles writes the final stage's file system into a directory
// (local) or a tar archive (tar), from a snapshot of its layers.
func (bd *builder) exportFiles(ctx context.Context, cfg *image.Config, layers []Layer, out Output) (_ digest.Digest, err error) {
	v := bd.prog.vertex("exporting to client " + map[string]string{"local": "directory", "tar": "tarball"}[out.Type])
	defer func() {
		if err != nil {
			v.fail(err)
		}
	}()
	snap, err := bd.b.Prepare(ctx, layers)
	if err != nil {
		return "", err
	}
	defer snap.Release(context.WithoutCancel(ctx))
	if out.Type == "local" {
		if err := os.MkdirAll(out.Dest, 0o755); err != nil {
			return "", fmt.Errorf("--output: %w", err)
		}
		dest, err := filepath.Abs(out.Dest)
		if err != nil {
			return "", err
		}
		cp := &copier{root: dest, src: &source{root: snap.Root(), keepOwner: true}}
		if err := cp.copyTree(snap.Root(), ".", dest); err != nil {
			return "", fmt.Errorf("--output %s: %w", out.Dest, err)
		}
	} else {
		err := writeDest(out, func(w io.Writer) error { return archive.WriteTar(ctx, w, snap.Root()) })
		if err != nil {
			return "", err
		}
	}
	v.printf("copying files done")
	v.done()
	b, err := jsonMarshal(cfg)
	if err != nil {
		return "", err
	}
	return digest.FromBytes(b), nil
}

// writeDest runs write against the output's file (made anew, renamed into
// place once whole) or its writer for "-".
func writeDest(out Output, write func(io.Writer) error) error {
	if out.Dest == "-" {
		return write(out.W)
	}
	f, err := os.CreateTemp(filepath.Dir(out.Dest), "."+filepath.Base(out.Dest)+".tmp-")
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("--output %s: %w", out.Dest, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--output %s: %w", out.Dest, err)
	}
	os.Chmod(f.Name(), 0o644)
	if err := os.Rename(f.Name(), out.Dest); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}
