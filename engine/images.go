package engine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/reference"
)

// ImageSummary is one row of `images`.
type ImageSummary struct {
	ID          digest.Digest
	RepoTags    []string // familiar: busybox:latest
	RepoDigests []string // familiar: busybox@sha256:...
	Created     time.Time
	Size        int64
	Labels      map[string]string
	Dangling    bool
}

// ImageListOptions configure Images.
type ImageListOptions struct {
	All     bool
	Filters filters.Args // dangling, label, reference, before, since
}

// Images lists the stored images, newest first.
func (e *Engine) Images(ctx context.Context, opts ImageListOptions) ([]ImageSummary, error) {
	db, err := e.images.Load(ctx)
	if err != nil {
		return nil, err
	}
	var before, since *image.Record
	for key, dst := range map[string]**image.Record{"before": &before, "since": &since} {
		for _, v := range opts.Filters[key] {
			r, err := db.Resolve(v)
			if err != nil {
				return nil, err
			}
			*dst = r
		}
	}
	var out []ImageSummary
	for _, id := range db.SortedIDs() {
		rec := db.Images[id]
		s := ImageSummary{ID: id, Created: rec.Created, Size: rec.Size, Dangling: len(db.TagsOf(id)) == 0}
		for _, t := range db.TagsOf(id) {
			// A reference filter shows only the names it matches, as Docker does.
			if t := image.Familiar(t); opts.Filters.MatchReference(t) {
				s.RepoTags = append(s.RepoTags, t)
			}
		}
		if opts.Filters.Has("reference") && len(s.RepoTags) == 0 {
			continue
		}
		for _, d := range db.DigestsOf(id) {
			s.RepoDigests = append(s.RepoDigests, image.Familiar(d))
		}
		if len(opts.Filters["label"]) > 0 {
			cfg, err := e.imageConfig(ctx, rec)
			if err != nil {
				return nil, err
			}
			s.Labels = cfg.Config.Labels
		}
		if !matchImage(s, opts.Filters) {
			continue
		}
		if before != nil && !rec.Created.Before(before.Created) {
			continue
		}
		if since != nil && !rec.Created.After(since.Created) {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

func matchImage(s ImageSummary, f filters.Args) bool {
	if dangling, set, _ := f.Bool("dangling"); set && s.Dangling != dangling {
		return false
	}
	return f.MatchLabels(s.Labels)
}

// ImageInspect is Docker's image inspect JSON.
type ImageInspect struct {
	ID            string `json:"Id"`
	RepoTags      []string
	RepoDigests   []string
	Parent        string
	Comment       string
	Created       string
	DockerVersion string
	Author        string
	Config        image.ContainerConfig
	Architecture  string
	Variant       string `json:",omitempty"`
	Os            string
	OsVersion     string `json:",omitempty"`
	Size          int64
	GraphDriver   GraphDriver
	RootFS        RootFS
	Metadata      struct{ LastTagTime string }
}

// GraphDriver names the storage driver and its directories.
type GraphDriver struct {
	Name string
	Data map[string]string
}

// RootFS lists the layers by diff ID.
type RootFS struct {
	Type   string
	Layers []string
}

// InspectImage returns Docker's view of one image.
func (e *Engine) InspectImage(ctx context.Context, name string) (*ImageInspect, error) {
	db, rec, cfg, err := e.resolveImage(ctx, name)
	if err != nil {
		return nil, err
	}
	out := &ImageInspect{
		ID:            rec.ID.String(),
		RepoTags:      []string{},
		RepoDigests:   []string{},
		Parent:        string(rec.Parent),
		Comment:       cfg.Comment,
		DockerVersion: cfg.DockerVersion,
		Author:        cfg.Author,
		Config:        cfg.Config,
		Architecture:  cfg.Architecture,
		Variant:       cfg.Variant,
		Os:            cfg.OS,
		OsVersion:     cfg.OSVersion,
		Size:          rec.Size,
		GraphDriver:   GraphDriver{Name: e.snaps.Driver(), Data: map[string]string{}},
		RootFS:        RootFS{Type: "layers"},
	}
	if cfg.Created != nil {
		out.Created = cfg.Created.UTC().Format(time.RFC3339Nano)
	}
	if out.Comment == "" && len(cfg.History) > 0 {
		out.Comment = cfg.History[len(cfg.History)-1].Comment
	}
	for _, t := range db.TagsOf(rec.ID) {
		out.RepoTags = append(out.RepoTags, image.Familiar(t))
	}
	for _, d := range db.DigestsOf(rec.ID) {
		out.RepoDigests = append(out.RepoDigests, image.Familiar(d))
	}
	for _, d := range cfg.RootFS.DiffIDs {
		out.RootFS.Layers = append(out.RootFS.Layers, d.String())
	}
	return out, nil
}

// resolveImage finds the image a user names and reads its config, with
// the DB it was found in.
func (e *Engine) resolveImage(ctx context.Context, name string) (*image.DB, *image.Record, *image.Config, error) {
	db, err := e.images.Load(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := db.Resolve(name)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := e.imageConfig(ctx, rec)
	if err != nil {
		return nil, nil, nil, err
	}
	return db, rec, cfg, nil
}

func (e *Engine) imageConfig(ctx context.Context, rec *image.Record) (*image.Config, error) {
	b, err := e.content.ReadAll(ctx, rec.ID, image.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", rec.ID.Encoded()[:12], err)
	}
	cfg, err := image.ParseConfig(b)
	if err != nil {
		return nil, errdefs.DataCorrupt("image %s: config: %v", rec.ID.Encoded()[:12], err)
	}
	return cfg, nil
}

// HistoryEntry is one row of `history`.
type HistoryEntry struct {
	ID        string // the image ID for the top entry, "<missing>" below
	Created   time.Time
	CreatedBy string
	Size      int64
	Comment   string
	Tags      []string
}

// History returns an image's history, newest first.
func (e *Engine) History(ctx context.Context, name string) ([]HistoryEntry, error) {
	db, rec, cfg, err := e.resolveImage(ctx, name)
	if err != nil {
		return nil, err
	}
	chains := image.ChainIDs(cfg.RootFS.DiffIDs)
	var out []HistoryEntry
	layer := 0
	for _, h := range cfg.History {
		en := HistoryEntry{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment}
		if h.Created != nil {
			en.Created = *h.Created
		}
		if !h.EmptyLayer && layer < len(chains) {
			if info, err := e.snaps.Stat(ctx, chains[layer]); err == nil {
				en.Size = info.Size
			}
			layer++
		}
		out = append(out, en)
	}
	if len(out) == 0 {
		out = append(out, HistoryEntry{Size: rec.Size})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	out[0].ID = rec.ID.String()
	for _, t := range db.TagsOf(rec.ID) {
		out[0].Tags = append(out[0].Tags, image.Familiar(t))
	}
	return out, nil
}

// Tag gives the image source the name target, moving target if it named
// another image.
func (e *Engine) Tag(ctx context.Context, source, target string) error {
	ref, err := image.ParseTag(target)
	if err != nil {
		return err
	}
	return e.images.Update(ctx, func(db *image.DB) error {
		rec, err := db.Resolve(source)
		if err != nil {
			return err
		}
		db.Tags[ref.String()] = rec.ID
		return nil
	})
}

// DeleteResponse is one line of what `rmi` did.
type DeleteResponse struct {
	Untagged string `json:",omitempty"`
	Deleted  string `json:",omitempty"`
}

// RemoveImage removes a name, and the image when no name is left, as
// `docker rmi` does. Removing an image by ID when several names point at it
// needs force.
func (e *Engine) RemoveImage(ctx context.Context, name string, force bool) ([]DeleteResponse, error) {
	users, err := e.imageUsers(ctx)
	if err != nil {
		return nil, err
	}
	var out []DeleteResponse
	err = e.images.Update(ctx, func(db *image.DB) error {
		out = nil
		rec, err := db.Resolve(name)
		if err != nil {
			return err
		}
		tags := db.TagsOf(rec.ID)
		// An image a container uses stays; without force it is an error,
		// with force its names go and it stays, untagged, as in Docker.
		if user := users[rec.ID]; user != "" {
			if !force && len(tags) <= 1 {
				return errdefs.Conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", name, user[:12], rec.ID.Encoded()[:12])
			}
			if force && len(tags) <= 1 {
				for _, t := range tags {
					delete(db.Tags, t)
					out = append(out, DeleteResponse{Untagged: image.Familiar(t)})
				}
				return nil
			}
		}
		byName := ""
		if ref, err := reference.ParseNormalizedNamed(name); err == nil {
			if c, ok := ref.(reference.Canonical); ok {
				if k := reference.TrimNamed(c).String() + "@" + c.Digest().String(); db.Digests[k] == rec.ID {
					byName = k
				}
			} else if t := reference.TagNameOnly(ref).String(); db.Tags[t] == rec.ID {
				byName = t
			}
		}
		switch {
		case byName != "":
			delete(db.Tags, byName)
			delete(db.Digests, byName)
			out = append(out, DeleteResponse{Untagged: image.Familiar(byName)})
			if len(db.TagsOf(rec.ID)) > 0 {
				return nil // other names remain: the image stays
			}
		case len(tags) > 1 && !force:
			return errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", rec.ID.Encoded()[:12])
		}
		for _, t := range db.TagsOf(rec.ID) {
			out = append(out, DeleteResponse{Untagged: image.Familiar(t)})
		}
		for _, d := range db.DigestsOf(rec.ID) {
			out = append(out, DeleteResponse{Untagged: image.Familiar(d)})
		}
		delete(db.Images, rec.ID)
		out = append(out, DeleteResponse{Deleted: rec.ID.String()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out[len(out)-1].Deleted != "" {
		if _, err := e.gc(ctx); err != nil {
			return out, err
		}
	}
	return out, nil
}

// PruneReport says what a prune removed.
type PruneReport struct {
	Deleted        []DeleteResponse
	SpaceReclaimed int64
}

// PruneImages removes dangling images, or with all every image (no
// container uses one yet), then collects unreferenced data.
func (e *Engine) PruneImages(ctx context.Context, all bool, f filters.Args) (*PruneReport, error) {
	users, err := e.imageUsers(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range f.Get("until") {
		if _, err := parseUntil(u); err != nil {
			return nil, err
		}
	}
	rep := &PruneReport{}
	err = e.images.Update(ctx, func(db *image.DB) error {
		rep.Deleted = nil
		for _, id := range db.SortedIDs() {
			rec := db.Images[id]
			tags := db.TagsOf(id)
			if (len(tags) > 0 && !all) || users[id] != "" {
				continue
			}
			if !pruneMatch(rec, f) {
				continue
			}
			for _, t := range tags {
				rep.Deleted = append(rep.Deleted, DeleteResponse{Untagged: image.Familiar(t)})
			}
			delete(db.Images, id)
			rep.Deleted = append(rep.Deleted, DeleteResponse{Deleted: id.String()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g, err := e.gc(ctx)
	rep.SpaceReclaimed = g.Reclaimed
	return rep, err
}

// pruneMatch applies prune's `until` filter.
func pruneMatch(rec *image.Record, f filters.Args) bool {
	for _, u := range f.Get("until") {
		if limit, err := parseUntil(u); err == nil && !rec.Created.Before(limit) {
			return false
		}
	}
	return true
}

// parseUntil reads an `until` filter: a duration ago, an RFC 3339 time, or
// Unix seconds, as Docker accepts.
func parseUntil(u string) (time.Time, error) {
	if d, err := time.ParseDuration(u); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, u); err == nil {
			return t, nil
		}
	}
	if secs, err := strconv.ParseInt(u, 10, 64); err == nil {
		return time.Unix(secs, 0), nil
	}
	return time.Time{}, errdefs.InvalidArgument("invalid filter 'until=%s': want a duration (10m), a date-time or Unix seconds", u)
}

// imageUsers maps each image some container was made from to one of them.
func (e *Engine) imageUsers(ctx context.Context) (map[digest.Digest]string, error) {
	list, err := e.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	users := map[digest.Digest]string{}
	for _, c := range list {
		users[c.Image] = c.ID
	}
	return users, nil
}
