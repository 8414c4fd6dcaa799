package engine

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/snapshot"
)

// Change is one line of `diff`: Kind is 'A' (added), 'C' (changed) or 'D'
// (deleted), Path the path in the container.
type Change struct {
	Kind byte
	Path string
}

// Diff lists what changed in the container's file system since it was
// made from its image, as docker diff does: from its changes laid out as
// an overlay upper directory, where a whiteout is a deletion and an entry
// that the layers below also have is a change.
func (e *Engine) Diff(ctx context.Context, ref string) ([]Change, error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return nil, err
	}
	ch, err := e.changes(ctx, c)
	if err != nil {
		return nil, err
	}
	defer ch.Release()
	upper, lowers := ch.Upper, ch.Lowers
	var out []Change
	err = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if rel == "." {
			return nil
		}
		cp := "/" + filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if isMountTarget(cp, fi.Mode().IsRegular(), fi.Size()) {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
			out = append(out, Change{'D', cp})
			return nil
		}
		kind := byte('A')
		for _, l := range lowers {
			if _, err := os.Lstat(filepath.Join(l, rel)); err == nil {
				kind = 'C'
				break
			}
		}
		out = append(out, Change{kind, cp})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("diff container %s: %w", c.ID[:12], err)
	}
	return out, nil
}

// changes returns what the container changed in its file system, as an
// overlay upper directory (see snapshot.Changes), and the layers below it.
func (e *Engine) changes(ctx context.Context, c *container.Container) (snapshot.Changes, error) {
	ch, err := e.snaps.Changes(ctx, c.Berth.RootfsKey)
	if err != nil {
		return ch, fmt.Errorf("container %s: %w", c.ID[:12], err)
	}
	return ch, nil
}

// CommitOptions are `commit`'s flags.
type CommitOptions struct {
	// Ref tags the new image; empty leaves it untagged.
	Ref string
	// Author and Message go into the image's history.
	Author, Message string
	// Changes are Dockerfile instructions applied to the config.
	Changes []string
	// Pause freezes a running container while its changes are read.
	Pause bool
}

// Commit makes an image of the container: its image's layers plus one
// with the container's changes (archive.Diff of its upper directory), its
// configuration as the container runs it with opts.Changes applied, and
// its image's history with one entry more. It returns the image ID.
func (e *Engine) Commit(ctx context.Context, ref string, opts CommitOptions) (id digest.Digest, err error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return "", err
	}
	var tag string
	if opts.Ref != "" {
		t, err := image.ParseTag(opts.Ref)
		if err != nil {
			return "", err
		}
		tag = t.String()
	}
	db, err := e.images.Load(ctx)
	if err != nil {
		return "", err
	}
	parent, ok := db.Images[c.Image]
	if !ok {
		return "", errdefs.NotFound("No such image: %s", c.Image)
	}
	pcfg, err := e.imageConfig(ctx, parent)
	if err != nil {
		return "", err
	}
	mb, err := e.content.ReadAll(ctx, parent.Manifest.Digest, image.MaxManifestSize)
	if err != nil {
		return "", fmt.Errorf("commit: image manifest: %w", err)
	}
	pm, err := image.ParseManifest(mb)
	if err != nil {
		return "", errdefs.DataCorrupt("commit: image manifest: %v", err)
	}

	now := time.Now().UTC()
	cfg := *pcfg
	cfg.Created = &now
	cfg.Author = opts.Author
	cfg.Comment = opts.Message
	cfg.Config = containerImageConfig(c, pcfg.Config)
	for _, ch := range opts.Changes {
		if err := image.ApplyChange(&cfg, ch); err != nil {
			return "", err
		}
	}

	l, err := e.NewLease()
	if err != nil {
		return "", err
	}
	defer e.EndLease(ctx, l, &err)
	w, err := e.content.Writer(ctx)
	if err != nil {
		return "", err
	}
	defer w.Close()
	if c.State.Running && opts.Pause && !c.State.Paused {
		if rt, err := e.ociRuntimeFor(c.HostConfig.Runtime); err == nil && rt.Pause(ctx, c.ID) == nil {
			defer rt.Resume(context.WithoutCancel(ctx), c.ID)
		}
	}
	ch, err := e.changes(ctx, c)
	if err != nil {
		return "", err
	}
	err = diffLayer(ctx, w, ch.Upper)
	ch.Release()
	if err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	diffID := w.Digest()
	chains := image.ChainIDs(parent.DiffIDs)
	if _, _, err := e.UnpackLayer(ctx, l, chains[len(chains)-1], diffID, w.Path()); err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	if err := l.AddBlobs(diffID); err != nil {
		return "", err
	}
	layer, err := w.Commit(ctx, diffID)
	if err != nil {
		return "", err
	}

	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: append(slices.Clone(parent.DiffIDs), diffID)}
	cfg.History = append(slices.Clone(pcfg.History), image.History{
		Created:   &now,
		CreatedBy: strings.Join(append([]string{c.Path}, c.Args...), " "),
		Author:    opts.Author,
		Comment:   opts.Message,
	})
	layers := append(slices.Clone(pm.Layers), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: layer.Digest, Size: layer.Size})
	rec, err := e.storeImage(ctx, l, &cfg, layers, parent.Size+layer.Size)
	if err != nil {
		return "", err
	}
	rec.Parent = parent.ID
	err = e.images.Update(ctx, func(db *image.DB) error {
		db.Images[rec.ID] = rec
		if tag != "" {
			db.Tags[tag] = rec.ID
		}
		return nil
	})
	return rec.ID, err
}

// containerImageConfig is the configuration a commit records: the
// container's, as docker commit takes it.
func containerImageConfig(c *container.Container, base image.ContainerConfig) image.ContainerConfig {
	cc := c.Config
	out := base
	out.User = cc.User
	out.Env = slices.Clone(cc.Env)
	out.Entrypoint = slices.Clone(cc.Entrypoint)
	out.Cmd = slices.Clone(cc.Cmd)
	out.WorkingDir = cc.WorkingDir
	out.Labels = cc.Labels
	out.ExposedPorts = cc.ExposedPorts
	out.Volumes = cc.Volumes
	out.StopSignal = cc.StopSignal
	out.Healthcheck = cc.Healthcheck
	return out
}

// isMountTarget reports whether the upper directory's entry at p is only
// the empty file the runtime made to bind the container's /etc files on:
// not a change of the user's (Docker keeps them in a layer of its own).
func isMountTarget(p string, regular bool, size int64) bool {
	switch p {
	case "/etc/hostname", "/etc/hosts", "/etc/resolv.conf":
		return regular && size == 0
	}
	return false
}

// diffLayer writes the layer of the changes in upper (archive.Diff)
// without the /etc files' mount targets.
func diffLayer(ctx context.Context, w io.Writer, upper string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Diff(ctx, pw, upper)) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if isMountTarget("/"+strings.TrimPrefix(h.Name, "./"), h.Typeflag == tar.TypeReg, h.Size) {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}
