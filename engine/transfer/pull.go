package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/lease"
	"github.com/berth-dev/berth/reference"
	"github.com/berth-dev/berth/remotes"
)

// Progress is one step of a pull or a push, about one layer (ID is its
// short digest) or about the whole image (ID is the tag or "").
type Progress struct {
	ID string
	// Status is Docker's word for the step: "Pulling from <repo>",
	// "Waiting", "Downloading", "Download complete", "Extracting",
	// "Pull complete", "Already exists"; for a push "Preparing", "Pushing",
	// "Pushed", "Layer already exists", "Mounted from <repo>".
	Status string
	// Current and Total count the bytes moved so far, while Downloading or
	// Pushing (Total is 0 when unknown).
	Current, Total int64
}

// ProgressFunc receives progress. The engine calls it from one goroutine
// at a time.
type ProgressFunc func(Progress)

// PullOptions configure Pull.
type PullOptions struct {
	// Remotes reaches the registries; nil uses a client with berth's
	// registry configuration and the user's Docker credentials.
	Remotes *remotes.Client
	// Platform picks an image from a multi-platform index: os/arch[/variant].
	// Empty means this host's (linux/GOARCH).
	Platform string
	// AllTags pulls every tag of the repository.
	AllTags bool
	// Jobs is how many layers move at once (default 4).
	Jobs int
	// Progress, if set, is told what happens.
	Progress ProgressFunc
}

// PullResult is one image a Pull brought in.
type PullResult struct {
	// Ref is the familiar reference pulled (busybox:latest).
	Ref string
	ID  digest.Digest
	// Digest is the digest of the manifest (or index) the reference named:
	// what RepoDigests records.
	Digest digest.Digest
	// UpToDate is true when the store already had the whole image.
	UpToDate bool
}

// Pull fetches an image from its registry, by tag or digest, and stores it
// unpacked and runnable. Layers download in parallel, each verified,
// decompressed and unpacked while it streams; layers already present are
// skipped; a download cut short is kept and resumed on the next try. On
// any error no image is added or retagged, and every error names the
// reference.
func Pull(ctx context.Context, e *engine.Engine, ref string, opts PullOptions) ([]PullResult, error) {
	client, r, err := resolve(opts.Remotes, ref)
	if err != nil {
		return nil, err
	}
	platform, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	p := &puller{e: e, client: client, platform: platform, explicitPlatform: opts.Platform != "", jobs: opts.Jobs, progress: syncProgress(opts.Progress)}
	if p.jobs <= 0 {
		p.jobs = 4
	}
	if !opts.AllTags {
		res, err := p.pull(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", r, err)
		}
		return []PullResult{res}, nil
	}
	if _, ok := r.Named.(reference.Digested); ok {
		return nil, errdefs.InvalidArgument("pull %s: a digest cannot be given with --all-tags", r)
	}
	if t, ok := r.Named.(reference.Tagged); ok && strings.Contains(ref, ":"+t.Tag()) {
		return nil, errdefs.InvalidArgument("pull %s: a tag cannot be given with --all-tags", r)
	}
	repo, _, err := p.open(ctx, reference.TrimNamed(r.Named), "")
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Repository(), err)
	}
	tags, err := repo.Tags(ctx)
	if err != nil {
		return nil, fmt.Errorf("pull %s: list tags: %w", r.Repository(), err)
	}
	var out []PullResult
	for _, t := range tags {
		tr, err := client.ParseReference(reference.TrimNamed(r.Named).String() + ":" + t)
		if err != nil {
			return out, err
		}
		res, err := p.pull(ctx, tr)
		if err != nil {
			return out, fmt.Errorf("pull %s: %w", tr, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// syncProgress serializes calls to fn (nil stays a no-op).
// resolve parses ref for client, or for a client with berth's registry
// configuration and the user's Docker credentials when client is nil.
func resolve(client *remotes.Client, ref string) (*remotes.Client, remotes.Ref, error) {
	if client == nil {
		var err error
		if client, err = remotes.New(remotes.Options{}); err != nil {
			return nil, remotes.Ref{}, err
		}
	}
	r, err := client.ParseReference(ref)
	return client, r, err
}

func syncProgress(fn ProgressFunc) ProgressFunc {
	if fn == nil {
		return func(Progress) {}
	}
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		fn(p)
	}
}

// parsePlatform reads os/arch[/variant]; empty is this host.
func parsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		return ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, errdefs.InvalidArgument("invalid platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// puller is one Pull in progress.
type puller struct {
	e                *engine.Engine
	client           *remotes.Client
	platform         ocispec.Platform
	explicitPlatform bool
	jobs             int
	progress         ProgressFunc
}

// open starts a session with the repository of named, trying docker.io's
// mirrors first; with ident, a mirror counts only if it has the manifest.
func (p *puller) open(ctx context.Context, named reference.Named, ident string) (*remotes.Repo, *remotes.Manifest, error) {
	hosts := p.client.Mirrors(reference.Domain(named))
	var lastErr error
	for _, host := range hosts {
		repo, err := p.client.Open(ctx, host, named, remotes.Pull)
		if err != nil {
			lastErr = err
			continue
		}
		if ident == "" {
			return repo, nil, nil
		}
		m, err := repo.Manifest(ctx, ident)
		if err != nil {
			lastErr = err
			continue
		}
		return repo, m, nil
	}
	return nil, nil, lastErr
}

func (p *puller) pull(ctx context.Context, r remotes.Ref) (res PullResult, err error) {
	res.Ref = r.String()
	ident := ""
	if d, ok := r.Named.(reference.Digested); ok {
		ident = d.Digest().String()
	} else {
		ident = r.Named.(reference.Tagged).Tag()
	}
	p.progress(Progress{ID: ident, Status: "Pulling from " + reference.Path(r.Named)})
	repo, top, err := p.open(ctx, r.Named, ident)
	if err != nil {
		return res, err
	}
	res.Digest = top.Digest
	m, mdesc, err := p.pickManifest(ctx, repo, top)
	if err != nil {
		return res, err
	}

	l, err := p.e.NewLease()
	if err != nil {
		return res, err
	}
	defer p.e.EndLease(ctx, l, &err)

	if err := l.AddBlobs(mdesc.Digest, m.Config.Digest); err != nil {
		return res, err
	}
	cb, err := p.fetchSmall(ctx, repo, m.Config, image.MaxConfigSize)
	if err != nil {
		return res, fmt.Errorf("image config: %w", err)
	}
	cfg, err := image.ParseConfig(cb)
	if err != nil {
		return res, errdefs.DataCorrupt("image config %s: %v", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return res, errdefs.DataCorrupt("image config %s lists %d layers, the manifest %d", m.Config.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	// An index has picked by platform already; a single manifest is
	// checked against an explicit --platform by its config.
	if p.explicitPlatform && mdesc.Digest == top.Digest && (cfg.OS != p.platform.OS || cfg.Architecture != p.platform.Architecture) {
		return res, errdefs.NotFound("image is for %s/%s, not the requested platform %s", cfg.OS, cfg.Architecture, platformString(p.platform))
	}
	size, fresh, err := p.layers(ctx, l, repo, m.Layers, cfg.RootFS.DiffIDs)
	if err != nil {
		return res, err
	}
	if _, err := p.e.PutBlob(ctx, l, mdesc.raw); err != nil {
		return res, err
	}
	rec := &image.Record{
		ID:       m.Config.Digest,
		Manifest: ocispec.Descriptor{MediaType: mdesc.MediaType, Digest: mdesc.Digest, Size: int64(len(mdesc.raw))},
		DiffIDs:  cfg.RootFS.DiffIDs,
		Size:     size,
		Added:    time.Now().UTC(),
	}
	if cfg.Created != nil {
		rec.Created = *cfg.Created
	}
	res.ID = rec.ID
	err = p.e.ImageStore().Update(ctx, func(db *image.DB) error {
		if old := db.Images[rec.ID]; old != nil {
			res.UpToDate = !fresh && old.Manifest.Digest == rec.Manifest.Digest
			rec.Added = old.Added
			rec.Parent = old.Parent
			if res.UpToDate {
				if t, ok := r.Named.(reference.Tagged); ok && db.Tags[t.String()] != rec.ID {
					res.UpToDate = false
				}
			}
		}
		db.Images[rec.ID] = rec
		if t, ok := r.Named.(reference.Tagged); ok {
			db.Tags[t.String()] = rec.ID
		}
		db.Digests[reference.TrimNamed(r.Named).String()+"@"+top.Digest.String()] = rec.ID
		return nil
	})
	return res, err
}

// manifestDesc is the image manifest a pull settled on.
type manifestDesc struct {
	MediaType string
	Digest    digest.Digest
	raw       []byte
}

// pickManifest follows an index down to the image manifest for the
// platform, refusing what berth cannot run.
func (p *puller) pickManifest(ctx context.Context, repo *remotes.Repo, top *remotes.Manifest) (*image.Manifest, manifestDesc, error) {
	cur := top
	for depth := 0; ; depth++ {
		if len(cur.Raw) > image.MaxManifestSize {
			return nil, manifestDesc{}, errdefs.InvalidArgument("manifest %s is larger than %d bytes", cur.Digest, image.MaxManifestSize)
		}
		mt := cur.MediaType
		if mt == "" || mt == "application/json" || mt == "text/plain" {
			// Some registries serve no media type: read it from the body.
			var probe struct {
				MediaType string          `json:"mediaType"`
				Manifests json.RawMessage `json:"manifests"`
			}
			json.Unmarshal(cur.Raw, &probe)
			mt = probe.MediaType
			if mt == "" && probe.Manifests != nil {
				mt = ocispec.MediaTypeImageIndex
			} else if mt == "" {
				mt = ocispec.MediaTypeImageManifest
			}
		}
		switch mt {
		case "application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws":
			return nil, manifestDesc{}, errdefs.InvalidArgument("the image uses Docker image manifest schema 1, which berth does not support: push it again with a current client (schema 2 or OCI)")
		case ocispec.MediaTypeImageManifest, image.MediaTypeDockerManifest:
			m, err := image.ParseManifest(cur.Raw)
			if err != nil {
				return nil, manifestDesc{}, errdefs.DataCorrupt("manifest %s: %v", cur.Digest, err)
			}
			switch m.Config.MediaType {
			case ocispec.MediaTypeImageConfig, image.MediaTypeDockerConfig:
			default:
				return nil, manifestDesc{}, errdefs.InvalidArgument("manifest %s is not a container image (config media type %q)", cur.Digest, m.Config.MediaType)
			}
			for _, ld := range m.Layers {
				if !image.IsLayerMediaType(ld.MediaType) {
					return nil, manifestDesc{}, errdefs.InvalidArgument("unsupported layer media type %q", ld.MediaType)
				}
				if err := ld.Digest.Validate(); err != nil || ld.Digest.Algorithm() != digest.SHA256 {
					return nil, manifestDesc{}, errdefs.DataCorrupt("manifest %s: invalid layer digest %q", cur.Digest, ld.Digest)
				}
			}
			if err := m.Config.Digest.Validate(); err != nil || m.Config.Digest.Algorithm() != digest.SHA256 {
				return nil, manifestDesc{}, errdefs.DataCorrupt("manifest %s: invalid config digest %q", cur.Digest, m.Config.Digest)
			}
			return m, manifestDesc{MediaType: mt, Digest: cur.Digest, raw: cur.Raw}, nil
		case ocispec.MediaTypeImageIndex, image.MediaTypeDockerManifestList:
			if depth >= 4 {
				return nil, manifestDesc{}, errdefs.DataCorrupt("image indexes nested too deep")
			}
			var idx ocispec.Index
			if err := json.Unmarshal(cur.Raw, &idx); err != nil {
				return nil, manifestDesc{}, errdefs.DataCorrupt("index %s: %v", cur.Digest, err)
			}
			d, ok := matchPlatform(idx.Manifests, p.platform)
			if !ok {
				return nil, manifestDesc{}, errdefs.NotFound("no matching manifest for %s in the manifest list entries", platformString(p.platform))
			}
			next, err := repo.Manifest(ctx, d.Digest.String())
			if err != nil {
				return nil, manifestDesc{}, fmt.Errorf("manifest %s: %w", d.Digest, err)
			}
			cur = next
		default:
			return nil, manifestDesc{}, errdefs.InvalidArgument("unsupported manifest media type %q", mt)
		}
	}
}

// matchPlatform picks the index entry for want: same OS and architecture,
// and the same variant when want names one (else the first of any
// variant).
func matchPlatform(ds []ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, bool) {
	var fallback *ocispec.Descriptor
	for i, d := range ds {
		pl := d.Platform
		if pl == nil || pl.OS != want.OS || pl.Architecture != want.Architecture {
			continue
		}
		if want.Variant == "" || pl.Variant == want.Variant {
			return d, true
		}
		if want.Architecture == "arm64" && want.Variant == "v8" && pl.Variant == "" && fallback == nil {
			fallback = &ds[i]
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return ocispec.Descriptor{}, false
}

// fetchSmall returns a small blob (a config), from the store if it is
// there, else from the registry into the store.
func (p *puller) fetchSmall(ctx context.Context, repo *remotes.Repo, d ocispec.Descriptor, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, errdefs.InvalidArgument("blob %s is larger than %d bytes", d.Digest, limit)
	}
	if b, err := p.e.ContentStore().ReadAll(ctx, d.Digest, limit); err == nil {
		return b, nil
	}
	rc, err := repo.FetchBlob(ctx, d.Digest, d.Size, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := p.e.ContentStore().Ingest(ctx, io.LimitReader(rc, limit+1), d.Digest); err != nil {
		return nil, err
	}
	return p.e.ContentStore().ReadAll(ctx, d.Digest, limit)
}

// layerJob is one layer of a pull.
type layerJob struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
	chain  digest.Digest
	parent digest.Digest
	id     string // short digest, for progress

	unpack   bool // the snapshot is missing
	haveBlob bool // the blob is in the store

	// Set by the worker.
	dir  string // overlay: the layer unpacked, not yet published
	done chan error
}

// layers brings every layer of an image into the store and returns their
// total size and whether anything was missing. Layers download and unpack
// in parallel; they are published as snapshots in order, bottom first,
// since a snapshot's parent must exist before it.
//
// With the overlay driver a layer's directory does not depend on the
// layers below, so each worker unpacks its layer into a private directory
// while it downloads, and publishing is a rename. With the native driver
// each layer's directory starts as a copy of its parent, so workers only
// download and unpacking happens in order as parents appear.
func (p *puller) layers(ctx context.Context, l *lease.Lease, repo *remotes.Repo, descs []ocispec.Descriptor, diffIDs []digest.Digest) (int64, bool, error) {
	chains := image.ChainIDs(diffIDs)
	if err := l.AddLayers(chains...); err != nil {
		return 0, false, err
	}
	var blobs []digest.Digest
	for _, d := range descs {
		blobs = append(blobs, d.Digest)
	}
	if err := l.AddBlobs(blobs...); err != nil {
		return 0, false, err
	}
	overlay := p.e.Snapshotter().WhiteoutMode() == archive.WhiteoutOverlay
	jobs := make([]*layerJob, len(descs))
	fresh := false
	for i, d := range descs {
		j := &layerJob{desc: d, diffID: diffIDs[i], chain: chains[i], id: d.Digest.Encoded()[:12], done: make(chan error, 1)}
		if i > 0 {
			j.parent = chains[i-1]
		}
		_, err := p.e.Snapshotter().Stat(ctx, j.chain)
		j.unpack = err != nil
		_, err = p.e.ContentStore().Info(ctx, d.Digest)
		j.haveBlob = err == nil
		if j.unpack || !j.haveBlob {
			fresh = true
			p.progress(Progress{ID: j.id, Status: "Waiting"})
		} else {
			p.progress(Progress{ID: j.id, Status: "Already exists"})
		}
		jobs[i] = j
	}
	if !fresh {
		var size int64
		for _, j := range jobs {
			info, err := p.e.Snapshotter().Stat(ctx, j.chain)
			if err != nil {
				return 0, false, err
			}
			size += info.Size
		}
		return size, false, nil
	}
	tmpRoot := filepath.Join(p.e.Root(), "pull")
	if overlay {
		if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
			return 0, false, fmt.Errorf("pull: %w", err)
		}
		cleanStale(tmpRoot)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(wctx)
	g.SetLimit(p.jobs)
	workersDone := make(chan struct{})
	go func() {
		for _, j := range jobs {
			if !j.unpack && j.haveBlob {
				j.done <- nil
				continue
			}
			g.Go(func() error {
				err := p.fetchLayer(gctx, repo, j, overlay, tmpRoot)
				j.done <- err
				return err
			})
		}
		g.Wait()
		close(workersDone)
	}()
	defer func() {
		cancel()
		<-workersDone
		for _, j := range jobs {
			if j.dir != "" {
				os.RemoveAll(j.dir)
			}
		}
		os.Remove(tmpRoot) // if empty
	}()

	var size int64
	for _, j := range jobs {
		var err error
		select {
		case err = <-j.done:
		case <-ctx.Done():
			return 0, false, ctx.Err()
		}
		if err != nil {
			return 0, false, err
		}
		if j.unpack {
			if !overlay {
				p.progress(Progress{ID: j.id, Status: "Extracting"})
			}
			if err := p.publish(ctx, l, j, overlay); err != nil {
				return 0, false, err
			}
			p.progress(Progress{ID: j.id, Status: "Pull complete"})
		}
		info, err := p.e.Snapshotter().Stat(ctx, j.chain)
		if err != nil {
			return 0, false, err
		}
		size += info.Size
	}
	return size, true, nil
}

// publish makes the snapshot of a layer a worker prepared.
func (p *puller) publish(ctx context.Context, l *lease.Lease, j *layerJob, overlay bool) error {
	if !overlay {
		path, err := p.e.ContentStore().BlobPath(j.desc.Digest)
		if err != nil {
			return err
		}
		_, _, err = p.e.UnpackLayer(ctx, l, j.parent, j.diffID, path)
		return err
	}
	if j.dir == "" {
		return nil // another process published it while we worked
	}
	_, err := p.e.Snapshotter().CreateLayer(ctx, j.chain, j.parent, func(dir string) error {
		// dir is the empty directory the layer's files belong in: put the
		// unpacked tree there: rename(2) replaces an empty directory (which
		// os.Rename refuses to).
		if err := unix.Rename(filepath.Join(j.dir, "fs"), dir); err != nil {
			return &os.LinkError{Op: "rename", Old: filepath.Join(j.dir, "fs"), New: dir, Err: err}
		}
		return nil
	})
	if errdefs.IsAlreadyExists(err) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", j.desc.Digest, err)
	}
	os.RemoveAll(j.dir)
	j.dir = ""
	return nil
}

// fetchLayer downloads a layer's blob (when the store lacks it) and, with
// the overlay driver, unpacks it into a private directory as it streams.
func (p *puller) fetchLayer(ctx context.Context, repo *remotes.Repo, j *layerJob, overlay bool, tmpRoot string) error {
	unpack := overlay && j.unpack
	var fsDir string
	if unpack {
		if _, err := p.e.Snapshotter().Stat(ctx, j.chain); err == nil {
			j.unpack = false // published meanwhile by another process
			unpack = false
		} else {
			dir, err := os.MkdirTemp(tmpRoot, strconv.Itoa(os.Getpid())+"-")
			if err != nil {
				return fmt.Errorf("layer %s: %w", j.desc.Digest, err)
			}
			j.dir = dir
			fsDir = filepath.Join(dir, "fs")
			if err := os.Mkdir(fsDir, 0o755); err != nil {
				return fmt.Errorf("layer %s: %w", j.desc.Digest, err)
			}
		}
	}
	if j.haveBlob {
		if !unpack {
			return nil
		}
		f, err := p.e.ContentStore().Open(ctx, j.desc.Digest)
		if err != nil {
			return err
		}
		defer f.Close()
		return p.apply(ctx, j, fsDir, f)
	}

	w, err := p.e.ContentStore().Writer(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	partial := p.partialPath(j.desc.Digest)
	var src io.Reader
	var have int64
	if pf, err := os.Open(partial); err == nil {
		defer pf.Close()
		if st, err := pf.Stat(); err == nil && st.Size() < j.desc.Size {
			have = st.Size()
			src = io.LimitReader(pf, have)
		}
	}
	body, err := repo.FetchBlob(ctx, j.desc.Digest, j.desc.Size, have)
	if err != nil {
		return fmt.Errorf("layer %s: %w", j.desc.Digest, err)
	}
	defer body.Close()
	p.progress(Progress{ID: j.id, Status: "Downloading", Current: have, Total: j.desc.Size})
	counted := &progressReader{r: body, n: have, report: func(n int64) {
		p.progress(Progress{ID: j.id, Status: "Downloading", Current: n, Total: j.desc.Size})
	}}
	var net io.Reader = counted
	if src != nil {
		net = io.MultiReader(src, counted)
	}
	stream := io.TeeReader(net, w)
	var diffID digest.Digest
	if unpack {
		diffID, err = p.applyStream(ctx, j, fsDir, stream)
	} else {
		_, err = io.Copy(io.Discard, stream)
	}
	if err == nil && (w.Size() != j.desc.Size || w.Digest() != j.desc.Digest) {
		os.Remove(partial)
		err = errdefs.DataCorrupt("layer %s: digest mismatch: the registry sent %d bytes hashing to %s", j.desc.Digest, w.Size(), w.Digest())
	}
	if err == nil && unpack && diffID != j.diffID {
		err = errdefs.DataCorrupt("layer %s: diff ID mismatch: the image config says %s, the layer is %s", j.desc.Digest, j.diffID, diffID)
	}
	if err != nil {
		if !errors.Is(err, errdefs.ErrDataCorrupt) && w.Size() > have {
			p.keepPartial(w.Path(), partial)
		}
		return err
	}
	p.progress(Progress{ID: j.id, Status: "Download complete"})
	if _, err := w.Commit(ctx, j.desc.Digest); err != nil {
		return err
	}
	os.Remove(partial)
	return nil
}

// apply unpacks a layer stream into dir and checks its diff ID.
func (p *puller) apply(ctx context.Context, j *layerJob, dir string, r io.Reader) error {
	diffID, err := p.applyStream(ctx, j, dir, r)
	if err != nil {
		return err
	}
	if diffID != j.diffID {
		return errdefs.DataCorrupt("layer %s: diff ID mismatch: the image config says %s, the layer is %s", j.desc.Digest, j.diffID, diffID)
	}
	return nil
}

// applyStream unpacks a layer stream into dir (with overlay whiteouts) and
// returns its diff ID.
func (p *puller) applyStream(ctx context.Context, j *layerJob, dir string, r io.Reader) (digest.Digest, error) {
	res, err := archive.Apply(ctx, dir, r, archive.ApplyOptions{Whiteouts: archive.WhiteoutOverlay})
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", j.desc.Digest, err)
	}
	return res.DiffID, nil
}

// partialPath is where the bytes of an interrupted download of d wait for
// the next try.
func (p *puller) partialPath(d digest.Digest) string {
	return filepath.Join(p.e.Root(), "pull", "partial-"+d.Encoded())
}

// keepPartial keeps what a writer received (a hard link: the writer's file
// is removed when it closes) for a later pull to resume from.
func (p *puller) keepPartial(from, to string) {
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return
	}
	tmp := to + ".new-" + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	if err := os.Link(from, tmp); err != nil {
		return
	}
	if err := os.Rename(tmp, to); err != nil {
		os.Remove(tmp)
	}
}

// cleanStale removes what dead pulls left under dir: unpack directories
// named for a process that is gone, and partial downloads a day old.
func cleanStale(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, en := range ents {
		n := en.Name()
		if pid, _, ok := strings.Cut(n, "-"); ok && en.IsDir() {
			if _, err := os.Stat("/proc/" + pid); errors.Is(err, fs.ErrNotExist) {
				os.RemoveAll(filepath.Join(dir, n))
			}
			continue
		}
		if info, err := en.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// progressReader counts bytes and reports the count every 256 KiB and at
// the end.
type progressReader struct {
	r      io.Reader
	n      int64
	last   int64
	report func(int64)
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.n += int64(n)
	if pr.n-pr.last >= 256<<10 || (err != nil && pr.n != pr.last) {
		pr.last = pr.n
		pr.report(pr.n)
	}
	return n, err
}

// RemoteManifest is a manifest or index as a registry serves it.
type RemoteManifest struct {
	// Ref is the normalized reference asked for.
	Ref       string
	MediaType string
	Digest    digest.Digest
	Raw       []byte
}

// InspectManifest fetches the manifest (or index) a reference names,
// without storing anything, as `docker manifest inspect` does.
func InspectManifest(ctx context.Context, client *remotes.Client, ref string) (*RemoteManifest, error) {
	r, err := client.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	ident := ""
	if d, ok := r.Named.(reference.Digested); ok {
		ident = d.Digest().String()
	} else {
		ident = r.Named.(reference.Tagged).Tag()
	}
	p := &puller{client: client}
	_, m, err := p.open(ctx, r.Named, ident)
	if err != nil {
		return nil, fmt.Errorf("manifest inspect %s: %w", r, err)
	}
	return &RemoteManifest{Ref: r.Named.String(), MediaType: m.MediaType, Digest: m.Digest, Raw: m.Raw}, nil
}
