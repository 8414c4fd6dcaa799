package engine

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/build/backend"
	"github.com/berth-dev/berth/build/cache"
	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/lease"
	"github.com/berth-dev/berth/internal/procfs"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/snapshot"
)

// BuildBackend is the engine as a build sees it (package build/backend's
// Backend): images, layers, writable snapshots and RUN steps through the
// runtime. Everything it makes is held by its lease until Close.
type BuildBackend struct {
	e     *Engine
	lease *lease.Lease
	// owner is "PID-STARTTIME" of this process: the names of the build's
	// snapshots and RUN containers start with "build-" and it, so that a
	// later build can tell those of a build that was killed.
	owner string
	// pull fetches the newest image of a name (--pull); the engine itself
	// has no registry client (see engine/transfer).
	pull func(ctx context.Context, name string) error
}

// BuildBackend begins a build: it cleans up after builds that were
// killed and returns the backend a build runs on (package build's Build,
// as engine/builder calls it). pull serves FROM images built with
// --pull. Close ends it.
func (e *Engine) BuildBackend(ctx context.Context, pull func(ctx context.Context, name string) error) (*BuildBackend, error) {
	if e.snaps.Driver() != "overlay" {
		return nil, errdefs.NotImplemented("build needs the overlay storage driver, not %s", e.snaps.Driver())
	}
	owner, err := buildOwner()
	if err != nil {
		return nil, err
	}
	if err := e.cleanStaleBuilds(ctx); err != nil {
		return nil, err
	}
	l, err := e.NewLease()
	if err != nil {
		return nil, err
	}
	return &BuildBackend{e: e, lease: l, owner: owner, pull: pull}, nil
}

// Close ends the build begun with BuildBackend: it releases the lease and,
// if the build failed (*errp is set), collects what it left.
func (b *BuildBackend) Close(ctx context.Context, errp *error) {
	b.e.EndLease(ctx, b.lease, errp)
}

// BuildCache opens the build cache of the data root.
func (e *Engine) BuildCache() (*cache.Cache, error) {
	return cache.Open(filepath.Join(e.root, "build"))
}

// hasBuildCache reports whether the data root has a build cache: whether
// it ever built.
func (e *Engine) hasBuildCache() bool {
	_, err := os.Stat(filepath.Join(e.root, "build"))
	return err == nil
}

// PruneBuildCache removes the build cache's records and cache mounts and
// collects the layers only they kept. It returns how many records went
// and the bytes reclaimed.
func (e *Engine) PruneBuildCache(ctx context.Context) (int, int64, error) {
	c, err := e.BuildCache()
	if err != nil {
		return 0, 0, err
	}
	if err := e.cleanStaleBuilds(ctx); err != nil {
		return 0, 0, err
	}
	_, _, mountBytes, err := c.Usage()
	if err != nil {
		return 0, 0, err
	}
	n, err := c.Prune(ctx)
	if err != nil {
		return n, 0, err
	}
	rep, err := e.gc(ctx)
	return n, rep.Reclaimed + mountBytes, err
}

// BuildCacheUsage is the build cache's line of system df.
type BuildCacheUsage struct {
	Records, Mounts int
	// Size is what the layers only the cache keeps and the cache mounts
	// use, in bytes.
	Size int64
}

// BuildCacheDiskUsage measures the build cache.
func (e *Engine) BuildCacheDiskUsage(ctx context.Context) (BuildCacheUsage, error) {
	var u BuildCacheUsage
	if !e.hasBuildCache() {
		return u, nil
	}
	c, err := e.BuildCache()
	if err != nil {
		return u, err
	}
	var mountBytes int64
	if u.Records, u.Mounts, mountBytes, err = c.Usage(); err != nil {
		return u, err
	}
	roots, err := c.Roots(ctx)
	if err != nil {
		return u, err
	}
	db, err := e.images.Load(ctx)
	if err != nil {
		return u, err
	}
	byImage := map[digest.Digest]bool{}
	for _, r := range db.Images {
		for _, c := range image.ChainIDs(r.DiffIDs) {
			byImage[c] = true
		}
	}
	seen := map[digest.Digest]bool{}
	for _, ls := range roots {
		for _, c := range image.ChainIDs(diffIDsOf(ls)) {
			if byImage[c] || seen[c] {
				continue
			}
			seen[c] = true
			if info, err := e.snaps.Stat(ctx, c); err == nil {
				u.Size += info.Size
			}
		}
	}
	u.Size += mountBytes
	return u, nil
}

// keepBuildCache marks what the build cache's records need, for gc. A
// data root that never built has no cache, and gets none from gc.
func (e *Engine) keepBuildCache(ctx context.Context, keepBlob, keepLayer map[digest.Digest]bool) error {
	if !e.hasBuildCache() {
		return nil
	}
	c, err := e.BuildCache()
	if err != nil {
		return err
	}
	roots, err := c.Roots(ctx)
	if err != nil {
		return err
	}
	for _, ls := range roots {
		for _, l := range ls {
			keepBlob[l.Blob.Digest] = true
		}
		for _, c := range image.ChainIDs(diffIDsOf(ls)) {
			keepLayer[c] = true
		}
	}
	return nil
}

func diffIDsOf(ls []backend.Layer) []digest.Digest {
	out := make([]digest.Digest, len(ls))
	for i, l := range ls {
		out[i] = l.DiffID
	}
	return out
}

func topChain(ls []backend.Layer) digest.Digest {
	if len(ls) == 0 {
		return ""
	}
	cs := image.ChainIDs(diffIDsOf(ls))
	return cs[len(cs)-1]
}

// name returns a new name for a snapshot or a RUN container.
func (b *BuildBackend) name() string {
	var rnd [8]byte
	rand.Read(rnd[:])
	return "build-" + b.owner + "-" + hex.EncodeToString(rnd[:])
}

// buildOwner returns the owner part of this process's build names.
func buildOwner() (string, error) {
	pid := os.Getpid()
	start, err := procfs.StartTime(pid)
	if err != nil {
		return "", err
	}
	return strconv.Itoa(pid) + "-" + start, nil
}

// staleBuild reports whether name (a build snapshot's or RUN container's)
// belongs to a build whose process is gone.
func staleBuild(name string) bool {
	rest, ok := strings.CutPrefix(name, "build-")
	if !ok {
		return false
	}
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) < 3 {
		return true // an older berth's name: no build of this one made it
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil {
		return true
	}
	return !procfs.Alive(pid, parts[1])
}

// cleanStaleBuilds removes what builds that were killed left: their RUN
// containers (killed and deleted), their mounts and writable snapshots,
// and their directories under the run root's build/. Those of running
// builds, in this process or another, are left alone.
func (e *Engine) cleanStaleBuilds(ctx context.Context) error {
	var errs []error
	if cs, err := runtime.List(ctx, e.runtimeRoot()); err == nil {
		for _, c := range cs {
			if staleBuild(c.ID()) {
				if err := c.Delete(ctx, true); err != nil {
					errs = append(errs, fmt.Errorf("RUN container %s: %w", c.ID(), err))
				}
			}
			c.Release()
		}
	}
	dir := filepath.Join(e.runRoot, "build")
	actives, err := e.snaps.Actives(ctx)
	if err != nil {
		return err
	}
	for _, a := range actives {
		if !staleBuild(a.Key) {
			continue
		}
		root := filepath.Join(dir, a.Key, "rootfs")
		if err := unmountAll(root); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := e.snaps.Remove(ctx, a.Key); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		if !staleBuild(en.Name()) {
			continue
		}
		p := filepath.Join(dir, en.Name())
		// Never remove through a mount: unmount first, and keep what
		// will not unmount.
		if err := unmountAll(filepath.Join(p, "rootfs")); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up after a killed build: %w", err)
	}
	return nil
}

// unmountAll unmounts whatever is mounted at p, if p exists.
func unmountAll(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return snapshot.Unmount(p)
}

func (b *BuildBackend) Image(ctx context.Context, name string) (*backend.Image, error) {
	e := b.e
	_, rec, cfg, err := e.resolveImage(ctx, name)
	if err != nil {
		return nil, err
	}
	mb, err := e.content.ReadAll(ctx, rec.Manifest.Digest, image.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", name, err)
	}
	m, err := image.ParseManifest(mb)
	if err != nil || len(m.Layers) != len(rec.DiffIDs) {
		return nil, errdefs.DataCorrupt("image %s: bad manifest", name)
	}
	img := &backend.Image{ID: rec.ID, Config: cfg}
	var blobs []digest.Digest
	for i, d := range rec.DiffIDs {
		img.Layers = append(img.Layers, backend.Layer{DiffID: d, Blob: m.Layers[i]})
		blobs = append(blobs, m.Layers[i].Digest)
	}
	// The build may outlive a concurrent rmi of its base.
	if err := b.lease.AddBlobs(append(blobs, rec.ID, rec.Manifest.Digest)...); err != nil {
		return nil, err
	}
	if err := b.lease.AddLayers(image.ChainIDs(rec.DiffIDs)...); err != nil {
		return nil, err
	}
	return img, nil
}

// buildSnap is a writable snapshot of a build step, mounted.
type buildSnap struct {
	b      *BuildBackend
	key    string
	dir    string // holds rootfs/ and the RUN step's bundle/
	parent digest.Digest
}

func (b *BuildBackend) Prepare(ctx context.Context, layers []backend.Layer) (backend.Snapshot, error) {
	key := b.name()
	parent := topChain(layers)
	mounts, err := b.e.snaps.Prepare(ctx, key, parent)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	s := &buildSnap{b: b, key: key, dir: filepath.Join(b.e.runRoot, "build", key), parent: parent}
	root := s.Root()
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.e.snaps.Remove(context.WithoutCancel(ctx), key)
		return nil, err
	}
	if err := snapshot.MountAll(mounts, root); err != nil {
		b.e.snaps.Remove(context.WithoutCancel(ctx), key)
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("build: mount: %w", err)
	}
	return s, nil
}

func (s *buildSnap) Root() string { return filepath.Join(s.dir, "rootfs") }

func (s *buildSnap) Release(ctx context.Context) error {
	err := snapshot.Unmount(s.Root())
	if rerr := s.b.e.snaps.Remove(ctx, s.key); err == nil {
		err = rerr
	}
	os.RemoveAll(s.dir)
	return err
}

func (s *buildSnap) Commit(ctx context.Context, epoch *time.Time) (backend.Layer, bool, error) {
	e := s.b.e
	upper, err := e.snaps.UpperDir(ctx, s.key)
	if err != nil {
		return backend.Layer{}, false, err
	}
	w, err := e.content.Writer(ctx)
	if err != nil {
		return backend.Layer{}, false, err
	}
	defer w.Close()
	n, err := layerOf(ctx, w, upper, epoch)
	if err != nil {
		return backend.Layer{}, false, fmt.Errorf("build: layer: %w", err)
	}
	if n == 0 {
		return backend.Layer{}, false, nil
	}
	diffID := w.Digest()
	if _, _, err := e.UnpackLayer(ctx, s.b.lease, s.parent, diffID, w.Path()); err != nil {
		return backend.Layer{}, false, err
	}
	if err := s.b.lease.AddBlobs(diffID); err != nil {
		return backend.Layer{}, false, err
	}
	info, err := w.Commit(ctx, diffID)
	if err != nil {
		return backend.Layer{}, false, err
	}
	return backend.Layer{DiffID: diffID, Blob: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: info.Digest, Size: info.Size}}, true, nil
}

// layerOf writes the changes in upper as a layer and returns how many
// entries it holds: archive.Diff, with times clamped to epoch when set.
func layerOf(ctx context.Context, w io.Writer, upper string, epoch *time.Time) (int, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Diff(ctx, pw, upper)) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	tw := tar.NewWriter(w)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if epoch != nil {
			if h.ModTime.After(*epoch) {
				h.ModTime = *epoch
			}
			h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		}
		if err := tw.WriteHeader(h); err != nil {
			return 0, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return 0, err
		}
		n++
	}
	return n, tw.Close()
}

func (b *BuildBackend) Run(ctx context.Context, root string, p backend.Process) (int, error) {
	e := b.e
	if len(p.Args) == 0 {
		return -1, errdefs.InvalidArgument("RUN: no command")
	}
	id := b.name()
	user, err := resolveUser(root, p.User)
	if err != nil {
		return -1, err
	}
	env := p.Env
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+user.home)
	}
	if cwd, err := securejoin.SecureJoin(root, p.Cwd); err == nil {
		if err := os.MkdirAll(cwd, 0o755); err != nil {
			return -1, fmt.Errorf("RUN: working directory: %w", err)
		}
	}
	c := &container.Container{ID: id, Path: p.Args[0], Args: p.Args[1:]}
	c.Config.Env = env
	c.Config.WorkingDir = p.Cwd
	c.Config.Hostname = "buildkitsandbox"
	mounts := p.Mounts
	netns := "host"
	if p.Network == "none" {
		netns = ""
	} else {
		for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
			if _, err := os.Stat(f); err == nil {
				mounts = append(mounts, specs.Mount{Destination: f, Type: "bind", Source: f, Options: []string{"rbind", "ro"}})
			}
		}
	}
	spec, err := buildSpec(specInput{c: c, rootfs: root, user: user, mounts: mounts, netns: netns})
	if err != nil {
		return -1, err
	}
	// Mount points the runtime makes are not the step's changes: note
	// which are missing now, and remove them (if still empty) after.
	var created []string
	for _, m := range spec.Mounts {
		if top := firstMissing(root, m.Destination); top != "" {
			created = append(created, top)
		}
	}
	defer func() {
		for i := len(created) - 1; i >= 0; i-- {
			removeEmptyTree(created[i])
		}
	}()
	bundle := filepath.Join(e.runRoot, "build", id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return -1, err
	}
	defer os.RemoveAll(bundle)
	sb, err := json.Marshal(spec)
	if err != nil {
		return -1, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), sb, 0o600); err != nil {
		return -1, err
	}
	code, err := runtime.Run(ctx, id, bundle, runtime.Options{Root: e.runtimeRoot(), Stdin: p.Stdin, Stdout: p.Stdout, Stderr: p.Stderr})
	var pe *runtime.ProcessError
	if errors.As(err, &pe) {
		fmt.Fprintln(p.Stderr, pe.Msg)
		return pe.Code, nil
	}
	return code, err
}

// firstMissing returns the host path of the topmost component of p (in
// root) that does not exist, or "" if p exists.
func firstMissing(root, p string) string {
	cur := "/"
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		hp, err := securejoin.SecureJoin(root, cur)
		if err != nil {
			return ""
		}
		if _, err := os.Lstat(hp); errors.Is(err, fs.ErrNotExist) {
			return hp
		}
	}
	return ""
}

// removeEmptyTree removes p if it is an empty file or a tree of empty
// directories and files: the mount points a run left.
func removeEmptyTree(p string) {
	fi, err := os.Lstat(p)
	if err != nil {
		return
	}
	if fi.IsDir() {
		ents, _ := os.ReadDir(p)
		for _, en := range ents {
			removeEmptyTree(filepath.Join(p, en.Name()))
		}
		os.Remove(p)
		return
	}
	if fi.Mode().IsRegular() && fi.Size() == 0 {
		os.Remove(p)
	}
}

func (b *BuildBackend) StoreImage(ctx context.Context, cfg *image.Config, layers []backend.Layer, tags []string) (digest.Digest, error) {
	e := b.e
	var names []string
	for _, t := range tags {
		tag, err := image.ParseTag(t)
		if err != nil {
			return "", err
		}
		names = append(names, tag.String())
	}
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: diffIDsOf(layers)}
	if cfg.RootFS.DiffIDs == nil {
		cfg.RootFS.DiffIDs = []digest.Digest{}
	}
	var descs []ocispec.Descriptor
	var size int64
	for i, c := range image.ChainIDs(cfg.RootFS.DiffIDs) {
		descs = append(descs, layers[i].Blob)
		if info, err := e.snaps.Stat(ctx, c); err == nil {
			size += info.Size
		}
	}
	if descs == nil {
		descs = []ocispec.Descriptor{}
	}
	rec, err := e.storeImage(ctx, b.lease, cfg, descs, size)
	if err != nil {
		return "", err
	}
	err = e.images.Update(ctx, func(db *image.DB) error {
		if old, ok := db.Images[rec.ID]; ok {
			rec.Added = old.Added
		}
		db.Images[rec.ID] = rec
		for _, n := range names {
			db.Tags[n] = rec.ID
		}
		return nil
	})
	return rec.ID, err
}

func (b *BuildBackend) Pull(ctx context.Context, name string) error {
	if b.pull == nil {
		return errdefs.NotImplemented("build --pull: this build has no registry client")
	}
	return b.pull(ctx, name)
}

func (b *BuildBackend) Stack(ctx context.Context, layers []backend.Layer) error {
	e := b.e
	var parent digest.Digest
	for i, c := range image.ChainIDs(diffIDsOf(layers)) {
		if err := b.lease.AddLayers(c); err != nil {
			return err
		}
		if _, err := e.snaps.Stat(ctx, c); err != nil {
			p, err := e.content.BlobPath(layers[i].Blob.Digest)
			if err != nil {
				return fmt.Errorf("build: layer %s: %w", layers[i].DiffID, err)
			}
			if _, _, err := e.UnpackLayer(ctx, b.lease, parent, layers[i].DiffID, p); err != nil {
				return err
			}
		}
		parent = c
	}
	return nil
}
