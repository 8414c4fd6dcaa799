package transfer

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/reference"
	"github.com/berth-dev/berth/remotes"
)

// PushOptions configure Push.
type PushOptions struct {
	// Remotes reaches the registries; nil uses a client with berth's
	// registry configuration and the user's Docker credentials.
	Remotes *remotes.Client
	// AllTags pushes every local tag of the repository.
	AllTags bool
	// Jobs is how many blobs move at once (default 4).
	Jobs int
	// Progress, if set, is told what happens.
	Progress ProgressFunc
}

// PushResult is one tag a Push sent.
type PushResult struct {
	// Ref is the familiar reference pushed (localhost:5000/app:v1).
	Ref string
	// Digest is the manifest's digest; Size its length.
	Digest digest.Digest
	Size   int64
}

// Push sends a local image to its registry: only the blobs the registry
// lacks (asked with HEAD first), layers in parallel, mounted from another
// repository of the same registry when one holds them, and the manifest
// last. The manifest is sent exactly as stored, so the image keeps its
// digest, which Push records as a RepoDigest.
func Push(ctx context.Context, e *engine.Engine, ref string, opts PushOptions) ([]PushResult, error) {
	client, r, err := resolve(opts.Remotes, ref)
	if err != nil {
		return nil, err
	}
	if _, ok := r.Named.(reference.Digested); ok {
		return nil, errdefs.InvalidArgument("push %s: cannot push a digest reference", ref)
	}
	db, err := e.ImageStore().Load(ctx)
	if err != nil {
		return nil, err
	}
	tags := []string{r.Named.String()}
	if opts.AllTags {
		tags = nil
		repoName := reference.TrimNamed(r.Named).String()
		for t := range db.Tags {
			if n, err := reference.ParseNormalizedNamed(t); err == nil && n.Name() == repoName {
				tags = append(tags, t)
			}
		}
		sort.Strings(tags)
		if len(tags) == 0 {
			return nil, errdefs.NotFound("push %s: no local tag of %s", r.Repository(), r.Repository())
		}
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	var out []PushResult
	for _, t := range tags {
		tr, err := client.ParseReference(t)
		if err != nil {
			return out, err
		}
		res, err := pushOne(ctx, e, client, db, tr, jobs, syncProgress(opts.Progress))
		if err != nil {
			return out, fmt.Errorf("push %s: %w", tr, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func pushOne(ctx context.Context, e *engine.Engine, client *remotes.Client, db *image.DB, r remotes.Ref, jobs int, progress ProgressFunc) (PushResult, error) {
	res := PushResult{Ref: r.String()}
	id, ok := db.Tags[r.Named.String()]
	if !ok {
		return res, errdefs.NotFound("An image does not exist locally with the tag: %s", r.Repository())
	}
	rec := db.Images[id]
	raw, err := e.ContentStore().ReadAll(ctx, rec.Manifest.Digest, image.MaxManifestSize)
	if err != nil {
		return res, fmt.Errorf("image %s: manifest: %w", id.Encoded()[:12], err)
	}
	m, err := image.ParseManifest(raw)
	if err != nil {
		return res, errdefs.DataCorrupt("image %s: manifest: %v", id.Encoded()[:12], err)
	}
	if len(m.Layers) != len(rec.DiffIDs) {
		return res, errdefs.DataCorrupt("image %s: manifest lists %d layers, the image %d", id.Encoded()[:12], len(m.Layers), len(rec.DiffIDs))
	}
	domain := reference.Domain(r.Named)
	mounts, scopes := mountSources(ctx, e, db, r.Named, m.Layers)
	progress(Progress{Status: "The push refers to repository [" + reference.TrimNamed(r.Named).String() + "]"})
	repo, err := client.Open(ctx, domain, r.Named, remotes.Push, scopes...)
	if err != nil {
		return res, err
	}
	pusher, err := remote.NewPusher(repo.RemoteOptions(ctx, jobs)...)
	if err != nil {
		return res, err
	}
	for _, l := range m.Layers {
		progress(Progress{ID: l.Digest.Encoded()[:12], Status: "Preparing"})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, l := range m.Layers {
		g.Go(func() error {
			return pushBlob(gctx, e, repo, pusher, l, rec.DiffIDs[i], mounts[l.Digest], progress)
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	if err := pushBlob(ctx, e, repo, pusher, m.Config, "", nil, func(Progress) {}); err != nil {
		return res, fmt.Errorf("config: %w", err)
	}
	mt := m.MediaType
	if mt == "" {
		mt = rec.Manifest.MediaType
	}
	var target name.Reference = repo.Name.Tag(r.Named.(reference.Tagged).Tag())
	if err := pusher.Put(ctx, target, rawManifest{raw: raw, mediaType: types.MediaType(mt)}); err != nil {
		return res, remotes.Classify(err)
	}
	res.Digest = rec.Manifest.Digest
	res.Size = int64(len(raw))
	err = e.ImageStore().Update(ctx, func(db *image.DB) error {
		if db.Images[id] != nil {
			db.Digests[reference.TrimNamed(r.Named).String()+"@"+res.Digest.String()] = id
		}
		return nil
	})
	return res, err
}

// mountSources finds, for each layer, another repository of the same
// registry that a local image says holds it, and the pull scopes a
// cross-repository mount from there needs.
func mountSources(ctx context.Context, e *engine.Engine, db *image.DB, target reference.Named, layers []ocispec.Descriptor) (map[digest.Digest]reference.Named, []string) {
	want := map[digest.Digest]bool{}
	for _, l := range layers {
		want[l.Digest] = true
	}
	out := map[digest.Digest]reference.Named{}
	scopes := map[string]bool{}
	for key, id := range db.Digests {
		n, err := reference.ParseNormalizedNamed(key)
		if err != nil || reference.Domain(n) != reference.Domain(target) || n.Name() == target.Name() {
			continue
		}
		rec := db.Images[id]
		if rec == nil {
			continue
		}
		raw, err := e.ContentStore().ReadAll(ctx, rec.Manifest.Digest, image.MaxManifestSize)
		if err != nil {
			continue
		}
		m, err := image.ParseManifest(raw)
		if err != nil {
			continue
		}
		for _, l := range m.Layers {
			if want[l.Digest] && out[l.Digest] == nil {
				out[l.Digest] = reference.TrimNamed(n)
				scopes["repository:"+reference.Path(n)+":pull"] = true
			}
		}
	}
	var sc []string
	for s := range scopes {
		sc = append(sc, s)
	}
	sort.Strings(sc)
	return out, sc
}

// pushBlob sends one blob unless the registry has it.
func pushBlob(ctx context.Context, e *engine.Engine, repo *remotes.Repo, pusher *remote.Pusher, d ocispec.Descriptor, diffID digest.Digest, mountFrom reference.Named, progress ProgressFunc) error {
	id := d.Digest.Encoded()[:12]
	ok, err := repo.BlobExists(ctx, d.Digest)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if ok {
		progress(Progress{ID: id, Status: "Layer already exists"})
		return nil
	}
	if _, err := e.ContentStore().Info(ctx, d.Digest); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	sl := &storeLayer{cs: e.ContentStore(), desc: d, diffID: diffID, progress: func(n int64) {
		progress(Progress{ID: id, Status: "Pushing", Current: n, Total: d.Size})
	}}
	var l v1.Layer = sl
	if mountFrom != nil {
		src, err := name.NewRepository(repo.Name.RegistryStr()+"/"+reference.Path(mountFrom), name.Insecure)
		if err == nil {
			l = &remote.MountableLayer{Layer: sl, Reference: src.Tag("latest")}
		}
	}
	if err := pusher.Upload(ctx, repo.Name, l); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, remotes.Classify(err))
	}
	if mountFrom != nil && !sl.opened.Load() {
		progress(Progress{ID: id, Status: "Mounted from " + reference.FamiliarName(mountFrom)})
	} else {
		progress(Progress{ID: id, Status: "Pushed"})
	}
	return nil
}

// storeLayer is a blob of the content store as go-containerregistry's
// v1.Layer: what it needs to upload it.
type storeLayer struct {
	cs       *content.Store
	desc     ocispec.Descriptor
	diffID   digest.Digest
	progress func(int64)
	opened   atomic.Bool
}

func (l *storeLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }

func (l *storeLayer) DiffID() (v1.Hash, error) {
	if l.diffID == "" {
		return l.Digest()
	}
	return v1.NewHash(l.diffID.String())
}

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	l.opened.Store(true)
	f, err := l.cs.Open(context.Background(), l.desc.Digest)
	if err != nil {
		return nil, err
	}
	return readCloser{&progressReader{r: f, report: l.progress}, f}, nil
}

func (l *storeLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := l.cs.Open(context.Background(), l.desc.Digest)
	if err != nil {
		return nil, err
	}
	r, _, err := archive.DecompressStream(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return readCloser{r, multiCloser{r, f}}, nil
}

func (l *storeLayer) Size() (int64, error) { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var first error
	for _, c := range m {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// rawManifest is a stored manifest, sent as it is.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
