package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	goruntime "runtime"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/lease"
)

// LoadedImage is one image a Load brought in.
type LoadedImage struct {
	ID digest.Digest
	// Tags are the familiar names it was tagged with ("busybox:latest").
	Tags []string
}

// Load reads an image archive — docker-archive (docker save, podman save)
// or OCI archive (podman save --format oci-archive, skopeo oci-archive:,
// docker save since 25 which writes both) — and stores its images, unpacked
// and runnable. On any error nothing is added to the store.
func (e *Engine) Load(ctx context.Context, r io.Reader) (loaded []LoadedImage, err error) {
	l, err := e.NewLease()
	if err != nil {
		return nil, err
	}
	defer e.EndLease(ctx, l, &err)

	st, err := e.stageArchive(ctx, r)
	defer st.close()
	if err != nil {
		return nil, err
	}
	var imgs []archiveImage
	if _, ok := st.files["index.json"]; ok {
		imgs, err = st.ociImages()
	} else if _, ok := st.files["manifest.json"]; ok {
		imgs, err = st.dockerImages()
	} else {
		err = errdefs.InvalidArgument("not an image archive: it has neither manifest.json nor index.json")
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if len(imgs) == 0 {
		return nil, errdefs.InvalidArgument("load: the archive holds no image")
	}

	var recs []*image.Record
	for _, img := range imgs {
		rec, err := e.loadImage(ctx, l, st, img)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		recs = append(recs, rec)
	}
	err = e.images.Update(ctx, func(db *image.DB) error {
		for i, rec := range recs {
			if old := db.Images[rec.ID]; old != nil {
				rec.Added = old.Added
			}
			db.Images[rec.ID] = rec
			for _, t := range imgs[i].tags {
				db.Tags[t] = rec.ID
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, rec := range recs {
		li := LoadedImage{ID: rec.ID}
		for _, t := range imgs[i].tags {
			li.Tags = append(li.Tags, image.Familiar(t))
		}
		loaded = append(loaded, li)
	}
	return loaded, nil
}

// archiveImage is one image found in an archive, by file names in it.
type archiveImage struct {
	manifest string // OCI: the manifest's file; docker-archive: ""
	config   string
	layers   []string
	tags     []string // normalized name:tag
}

func (e *Engine) loadImage(ctx context.Context, l *lease.Lease, st *staged, img archiveImage) (*image.Record, error) {
	cf, err := st.file(img.config)
	if err != nil {
		return nil, err
	}
	cb, err := os.ReadFile(cf.path())
	if err != nil {
		return nil, err
	}
	cfg, err := image.ParseConfig(cb)
	if err != nil {
		return nil, errdefs.DataCorrupt("image config %s: %v", img.config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(img.layers) {
		return nil, errdefs.DataCorrupt("image config %s lists %d layers, the manifest %d", img.config, len(cfg.RootFS.DiffIDs), len(img.layers))
	}
	var parent digest.Digest
	var size int64
	var descs []ocispec.Descriptor
	for i, name := range img.layers {
		lf, err := st.file(name)
		if err != nil {
			return nil, err
		}
		chain, n, err := e.UnpackLayer(ctx, l, parent, cfg.RootFS.DiffIDs[i], lf.path())
		if err != nil {
			return nil, err
		}
		parent = chain
		size += n
		comp, err := compressionOf(lf.path())
		if err != nil {
			return nil, err
		}
		descs = append(descs, ocispec.Descriptor{MediaType: dockerLayerType(comp), Digest: lf.w.Digest(), Size: lf.w.Size()})
	}
	// Commit the blobs now that every layer unpacked and verified.
	commit := func(f *stagedFile) error {
		if f.committed != "" {
			return nil
		}
		if err := l.AddBlobs(f.w.Digest()); err != nil {
			return err
		}
		if _, err := f.w.Commit(ctx, ""); err != nil {
			return err
		}
		p, err := e.content.BlobPath(f.w.Digest())
		if err != nil {
			return err
		}
		f.committed = p
		return nil
	}
	for _, name := range append([]string{img.config}, img.layers...) {
		f, _ := st.file(name)
		if err := commit(f); err != nil {
			return nil, err
		}
	}
	rec := &image.Record{ID: cf.w.Digest(), DiffIDs: cfg.RootFS.DiffIDs, Size: size}
	if cfg.Created != nil {
		rec.Created = *cfg.Created
	}
	if img.manifest != "" {
		mf, _ := st.file(img.manifest)
		m, err := readManifest(mf.path())
		if err != nil {
			return nil, err
		}
		if err := commit(mf); err != nil {
			return nil, err
		}
		rec.Manifest = ocispec.Descriptor{MediaType: m.MediaType, Digest: mf.w.Digest(), Size: mf.w.Size()}
		if rec.Manifest.MediaType == "" {
			rec.Manifest.MediaType = ocispec.MediaTypeImageManifest
		}
	} else {
		// A docker-archive has no manifest: write the schema 2 manifest a
		// registry would have served.
		m := image.Manifest{
			SchemaVersion: 2,
			MediaType:     image.MediaTypeDockerManifest,
			Config:        ocispec.Descriptor{MediaType: image.MediaTypeDockerConfig, Digest: cf.w.Digest(), Size: cf.w.Size()},
			Layers:        descs,
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		mi, err := e.PutBlob(ctx, l, mb)
		if err != nil {
			return nil, err
		}
		rec.Manifest = ocispec.Descriptor{MediaType: m.MediaType, Digest: mi.Digest, Size: mi.Size}
	}
	return rec, nil
}

func readManifest(p string) (*image.Manifest, error) {
	b, err := readLimited(p, image.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	m, err := image.ParseManifest(b)
	if err != nil {
		return nil, errdefs.DataCorrupt("image manifest: %v", err)
	}
	return m, nil
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errdefs.InvalidArgument("%s is larger than %d bytes", path.Base(p), limit)
	}
	return b, nil
}

// staged holds the files of an archive, each streamed into a private blob
// writer of the content store (hashed on the way), nothing committed yet.
type staged struct {
	files map[string]*stagedFile
	links map[string]string // symlinks and hardlinks between entries
}

type stagedFile struct {
	w         *content.Writer
	committed string // the blob's path once committed
}

// path is where the file's bytes are now: staged, or committed.
func (f *stagedFile) path() string {
	if f.committed != "" {
		return f.committed
	}
	return f.w.Path()
}

func (e *Engine) stageArchive(ctx context.Context, r io.Reader) (*staged, error) {
	st := &staged{files: map[string]*stagedFile{}, links: map[string]string{}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(st.files) == 0 && len(st.links) == 0 {
				return st, errdefs.InvalidArgument("load: not an image archive (%v)", err)
			}
			return st, errdefs.DataCorrupt("load: archive is truncated or corrupt: %v", err)
		}
		name := cleanName(h.Name)
		switch h.Typeflag {
		case tar.TypeReg:
			w, err := e.content.Writer(ctx)
			if err != nil {
				return st, err
			}
			st.files[name] = &stagedFile{w: w}
			if _, err := io.Copy(w, tr); err != nil {
				return st, errdefs.DataCorrupt("load: archive is truncated or corrupt: %s: %v", name, err)
			}
		case tar.TypeSymlink:
			st.links[name] = cleanName(path.Join(path.Dir(name), h.Linkname))
		case tar.TypeLink:
			st.links[name] = cleanName(h.Linkname)
		}
	}
	if len(st.files) == 0 {
		return st, errdefs.InvalidArgument("load: not an image archive (empty)")
	}
	return st, nil
}

func cleanName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// file finds an entry by name, following links between entries.
func (st *staged) file(name string) (*stagedFile, error) {
	name = cleanName(name)
	for range 16 {
		if f, ok := st.files[name]; ok {
			return f, nil
		}
		t, ok := st.links[name]
		if !ok {
			break
		}
		name = t
	}
	return nil, errdefs.DataCorrupt("archive lacks %s", name)
}

// blob finds an OCI layout blob and checks that its bytes match its name.
func (st *staged) blob(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", errdefs.DataCorrupt("invalid digest %q in archive", d)
	}
	name := path.Join("blobs", d.Algorithm().String(), d.Encoded())
	f, err := st.file(name)
	if err != nil {
		return "", err
	}
	if f.w.Digest() != d {
		return "", errdefs.DataCorrupt("blob %s in archive has digest %s", d, f.w.Digest())
	}
	return name, nil
}

func (st *staged) readJSON(name string, v any) error {
	f, err := st.file(name)
	if err != nil {
		return err
	}
	b, err := readLimited(f.path(), image.MaxConfigSize)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errdefs.DataCorrupt("%s: %v", name, err)
	}
	return nil
}

func (st *staged) close() {
	for _, f := range st.files {
		f.w.Close()
	}
}

// dockerImages reads a docker-archive's manifest.json.
func (st *staged) dockerImages() ([]archiveImage, error) {
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := st.readJSON("manifest.json", &entries); err != nil {
		return nil, err
	}
	var out []archiveImage
	for _, en := range entries {
		img := archiveImage{config: en.Config, layers: en.Layers}
		for _, t := range en.RepoTags {
			ref, err := image.ParseTag(t)
			if err != nil {
				return nil, errdefs.DataCorrupt("manifest.json: %v", err)
			}
			img.tags = append(img.tags, ref.String())
		}
		out = append(out, img)
	}
	return out, nil
}

// ociImages reads an OCI layout's index.json, descending into indexes and
// picking this host's platform.
func (st *staged) ociImages() ([]archiveImage, error) {
	var idx ocispec.Index
	if err := st.readJSON("index.json", &idx); err != nil {
		return nil, err
	}
	byManifest := map[digest.Digest]*archiveImage{}
	var order []digest.Digest
	for _, d := range idx.Manifests {
		md, err := st.pickManifest(d, 0)
		if err != nil {
			return nil, err
		}
		img := byManifest[md.Digest]
		if img == nil {
			mname, err := st.blob(md.Digest)
			if err != nil {
				return nil, err
			}
			var m image.Manifest
			if err := st.readJSON(mname, &m); err != nil {
				return nil, err
			}
			img = &archiveImage{manifest: mname}
			if img.config, err = st.blob(m.Config.Digest); err != nil {
				return nil, err
			}
			for _, ld := range m.Layers {
				if !image.IsLayerMediaType(ld.MediaType) {
					return nil, errdefs.InvalidArgument("unsupported layer media type %q", ld.MediaType)
				}
				lname, err := st.blob(ld.Digest)
				if err != nil {
					return nil, err
				}
				img.layers = append(img.layers, lname)
			}
			byManifest[md.Digest] = img
			order = append(order, md.Digest)
		}
		if name := refName(d.Annotations); name != "" {
			img.tags = append(img.tags, name)
		}
	}
	// docker save (25+) writes both forms: take the names from manifest.json
	// when index.json gives none.
	if _, ok := st.files["manifest.json"]; ok {
		if dimgs, err := st.dockerImages(); err == nil {
			for _, di := range dimgs {
				for _, img := range byManifest {
					if len(img.tags) == 0 && cleanName(di.config) == img.config {
						img.tags = di.tags
					}
				}
			}
		}
	}
	var out []archiveImage
	for _, d := range order {
		out = append(out, *byManifest[d])
	}
	return out, nil
}

// pickManifest follows an index down to this platform's image manifest.
func (st *staged) pickManifest(d ocispec.Descriptor, depth int) (ocispec.Descriptor, error) {
	switch d.MediaType {
	case ocispec.MediaTypeImageIndex, image.MediaTypeDockerManifestList:
	default:
		return d, nil
	}
	if depth > 4 {
		return d, errdefs.DataCorrupt("image indexes nested too deep")
	}
	name, err := st.blob(d.Digest)
	if err != nil {
		return d, err
	}
	var idx ocispec.Index
	if err := st.readJSON(name, &idx); err != nil {
		return d, err
	}
	for _, m := range idx.Manifests {
		if m.Platform == nil || (m.Platform.OS == "linux" && m.Platform.Architecture == goruntime.GOARCH) {
			return st.pickManifest(m, depth+1)
		}
	}
	return d, errdefs.NotFound("no image for linux/%s in the archive's index %s", goruntime.GOARCH, d.Digest)
}

// refName reads the image name an OCI index gives a manifest: containerd's
// full name, or a full reference in the OCI ref.name annotation (a bare tag
// there names no repository and is ignored).
func refName(ann map[string]string) string {
	for _, k := range []string{"io.containerd.image.name", ocispec.AnnotationRefName} {
		v := ann[k]
		if v == "" || !strings.ContainsAny(v, "/:") {
			continue
		}
		if ref, err := image.ParseTag(v); err == nil {
			return ref.String()
		}
	}
	return ""
}
