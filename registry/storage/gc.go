package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// GCOptions configure a garbage collection.
type GCOptions struct {
	// Grace keeps whatever was written or referred to more recently, so
	// that a push in progress (blobs uploaded, manifest not yet put) is
	// never collected under it.
	Grace time.Duration
	// UploadTTL removes uploads idle for longer; 0 keeps them all.
	UploadTTL time.Duration
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
}

// GCReport says what a collection removed (or, in a dry run, would remove).
type GCReport struct {
	Manifests []string        `json:"manifests"`  // untagged manifests, as name@digest
	BlobLinks []string        `json:"blob_links"` // blobs no manifest of the repository uses, as name@digest
	Blobs     []digest.Digest `json:"blobs"`      // bytes no repository uses
	Bytes     int64           `json:"bytes"`      // size of Blobs
	Uploads   int             `json:"uploads"`    // abandoned uploads
}

// GC removes what nothing refers to: manifests that no tag reaches (through
// indexes and referrers), blob links that no kept manifest uses, the bytes
// that no repository links, and abandoned uploads. It runs while the store
// serves; see the package documentation for why that is safe.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	rep := GCReport{Manifests: []string{}, BlobLinks: []string{}, Blobs: []digest.Digest{}}
	start := time.Now()
	cutoff := start.Add(-opts.Grace)
	repos, err := s.Repositories(ctx)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	removed := map[string]bool{} // link paths removed (or, dry, to remove)
	for _, name := range repos {
		if err := s.gcRepo(ctx, name, cutoff, opts.DryRun, removed, &rep); err != nil {
			return rep, fmt.Errorf("gc %s: %w", name, err)
		}
	}

	// What repositories still link, after the links above went.
	used := map[digest.Digest]bool{}
	for _, name := range repos {
		for _, kind := range []string{"_manifests", "_blobs"} {
			links, err := s.links(name, kind)
			if err != nil {
				return rep, fmt.Errorf("gc %s: %w", name, err)
			}
			for d, l := range links {
				if !removed[l.path] {
					used[d] = true
				}
			}
		}
	}
	if err := s.gcBlobs(ctx, cutoff, opts.DryRun, used, &rep); err != nil {
		return rep, err
	}
	if opts.UploadTTL > 0 {
		if err := s.gcUploads(start.Add(-opts.UploadTTL), opts.DryRun, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type link struct {
	path  string
	mtime time.Time
}

// links lists the links of one kind ("_manifests" or "_blobs") of a repository.
func (s *Store) links(name, kind string) (map[digest.Digest]link, error) {
	out := map[digest.Digest]link{}
	base := s.repoPath(name, kind)
	algs, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	for _, a := range algs {
		ents, err := os.ReadDir(filepath.Join(base, a.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() != nil {
				continue
			}
			st, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out[d] = link{path: filepath.Join(base, a.Name(), e.Name()), mtime: st.ModTime()}
		}
	}
	return out, nil
}

// refs is what a manifest refers to.
type refs struct {
	Config    *struct{ Digest digest.Digest }  `json:"config"`
	Layers    []struct{ Digest digest.Digest } `json:"layers"`
	Manifests []struct{ Digest digest.Digest } `json:"manifests"`
}

func (s *Store) gcRepo(ctx context.Context, name string, cutoff time.Time, dry bool, removed map[string]bool, rep *GCReport) error {
	manifests, err := s.links(name, "_manifests")
	if err != nil {
		return err
	}
	blobs, err := s.links(name, "_blobs")
	if err != nil {
		return err
	}
	// Roots: what tags point to, and whatever is younger than the cutoff.
	var queue []digest.Digest
	tags, err := s.Tags(ctx, name)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if d, err := s.Resolve(ctx, name, t); err == nil {
			queue = append(queue, d)
		}
	}
	for d, l := range manifests {
		if !l.mtime.Before(cutoff) {
			queue = append(queue, d)
		}
	}
	kept := map[digest.Digest]bool{}
	usedBlobs := map[digest.Digest]bool{}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := queue[0]
		queue = queue[1:]
		if kept[d] {
			continue
		}
		kept[d] = true
		if b, err := os.ReadFile(s.blobPath(d)); err == nil {
			var r refs
			if json.Unmarshal(b, &r) == nil {
				if r.Config != nil {
					usedBlobs[r.Config.Digest] = true
				}
				for _, l := range r.Layers {
					usedBlobs[l.Digest] = true
				}
				for _, m := range r.Manifests {
					queue = append(queue, m.Digest)
				}
			}
		}
		// Referrers of a kept manifest are kept: artifacts are seldom tagged.
		ents, _ := os.ReadDir(s.repoPath(name, "_referrers", digestPath(d)))
		for _, e := range ents {
			if alg, enc, ok := strings.Cut(e.Name(), "-"); ok {
				queue = append(queue, digest.NewDigestFromEncoded(digest.Algorithm(alg), enc))
			}
		}
	}

	for d, l := range manifests {
		if kept[d] {
			continue
		}
		ok, err := s.removeIfOld(l.path, cutoff, dry)
		if err != nil {
			return err
		}
		if ok {
			removed[l.path] = true
			rep.Manifests = append(rep.Manifests, name+"@"+d.String())
			if !dry {
				if b, err := os.ReadFile(s.blobPath(d)); err == nil {
					if subj := subjectOf(b); subj != "" {
						os.Remove(s.repoPath(name, "_referrers", digestPath(subj), referrerFile(d)))
					}
				}
			}
		}
	}
	for d, l := range blobs {
		if usedBlobs[d] {
			continue
		}
		ok, err := s.removeIfOld(l.path, cutoff, dry)
		if err != nil {
			return err
		}
		if ok {
			removed[l.path] = true
			rep.BlobLinks = append(rep.BlobLinks, name+"@"+d.String())
		}
	}
	return nil
}

// removeIfOld removes path if it was not modified since cutoff, deciding
// under the exclusive lock so that no writer refers to it meanwhile.
func (s *Store) removeIfOld(path string, cutoff time.Time, dry bool) (bool, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if !st.ModTime().Before(cutoff) {
		return false, nil // used since the collection started
	}
	if dry {
		return true, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

func (s *Store) gcBlobs(ctx context.Context, cutoff time.Time, dry bool, used map[digest.Digest]bool, rep *GCReport) error {
	base := filepath.Join(s.root, "blobs")
	algs, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("gc blobs: %w", err)
	}
	for _, a := range algs {
		ents, err := os.ReadDir(filepath.Join(base, a.Name()))
		if err != nil {
			return fmt.Errorf("gc blobs: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() != nil || used[d] {
				continue
			}
			p := filepath.Join(base, a.Name(), e.Name())
			st, err := os.Stat(p)
			if err != nil {
				continue
			}
			ok, err := s.removeIfOld(p, cutoff, dry)
			if err != nil {
				return fmt.Errorf("gc blob %s: %w", d, err)
			}
			if ok {
				rep.Blobs = append(rep.Blobs, d)
				rep.Bytes += st.Size()
			}
		}
	}
	return nil
}

// gcUploads removes uploads, and temporary files of interrupted writes,
// untouched since cutoff.
func (s *Store) gcUploads(cutoff time.Time, dry bool, rep *GCReport) error {
	base := filepath.Join(s.root, "uploads")
	ents, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("gc uploads: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(base, e.Name())
		if e.IsDir() {
			p = filepath.Join(p, "data")
		}
		st, err := os.Stat(p)
		if err != nil || !st.ModTime().Before(cutoff) {
			continue
		}
		if e.IsDir() {
			rep.Uploads++
		}
		if dry {
			continue
		}
		s.mu.Lock()
		if u, ok := s.uploads[e.Name()]; ok {
			if !u.mu.TryLock() {
				s.mu.Unlock()
				continue // a request is writing it right now
			}
			u.gone = true
			u.f.Close()
			delete(s.uploads, e.Name())
			u.mu.Unlock()
		}
		os.RemoveAll(filepath.Join(base, e.Name()))
		s.mu.Unlock()
	}
	return nil
}
