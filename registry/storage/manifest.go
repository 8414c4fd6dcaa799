package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Manifest is a manifest (or index) of a repository.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Content   []byte
}

// PutRequest is a manifest to store, with what it refers to.
type PutRequest struct {
	Manifest
	// Blobs must already be blobs of the repository (config and layers).
	Blobs []digest.Digest
	// Manifests must already be manifests of the repository (an index's entries).
	Manifests []digest.Digest
	// Subject, when set, files the manifest in the subject's referrers, as
	// Descriptor (JSON).
	Subject    digest.Digest
	Descriptor []byte
	// Tags point to the manifest once it is stored.
	Tags []string
}

// PutManifest stores a manifest into repository name. It fails with an
// errdefs.ErrNotFound error naming the first blob or manifest it refers to
// that the repository does not have, and then stores nothing.
func (s *Store) PutManifest(ctx context.Context, name string, req PutRequest) error {
	if err := checkName(name); err != nil {
		return err
	}
	for _, t := range req.Tags {
		if !ValidTag(t) {
			return errdefs.InvalidArgument("invalid tag %q", t)
		}
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	// Refer only to what exists, and refresh it so a concurrent GC keeps it.
	for _, d := range req.Blobs {
		if err := s.refresh(ctx, name, "_blobs", d); err != nil {
			return err
		}
	}
	for _, d := range req.Manifests {
		if err := s.refresh(ctx, name, "_manifests", d); err != nil {
			return err
		}
	}
	if err := s.writeBlob(req.Digest, req.Content); err != nil {
		return fmt.Errorf("put manifest %s: %w", req.Digest, err)
	}
	if err := writeLink(s.repoPath(name, "_manifests", digestPath(req.Digest)), []byte(req.MediaType)); err != nil {
		return fmt.Errorf("put manifest %s: %w", req.Digest, err)
	}
	if req.Subject != "" {
		p := s.repoPath(name, "_referrers", digestPath(req.Subject), referrerFile(req.Digest))
		if err := writeLink(p, req.Descriptor); err != nil {
			return fmt.Errorf("put manifest %s: index referrer: %w", req.Digest, err)
		}
	}
	for _, t := range req.Tags {
		if err := writeLink(s.repoPath(name, "_tags", t), []byte(req.Digest)); err != nil {
			return fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return nil
}

func referrerFile(d digest.Digest) string { return d.Algorithm().String() + "-" + d.Encoded() }

// refresh checks that d is a blob (kind "_blobs") or manifest ("_manifests")
// of repository name and marks it and its bytes as used now.
// Preconditions: s.gcMu is held.
func (s *Store) refresh(ctx context.Context, name, kind string, d digest.Digest) error {
	link := s.repoPath(name, kind, digestPath(d))
	if err := touch(link); errors.Is(err, fs.ErrNotExist) {
		if kind == "_blobs" {
			return errdefs.NotFound("blob %s unknown to %s", d, name)
		}
		return errdefs.NotFound("manifest %s unknown to %s", d, name)
	} else if err != nil {
		return fmt.Errorf("check %s: %w", d, err)
	}
	if err := touch(s.blobPath(d)); errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("blob %s unknown to %s", d, name)
	} else if err != nil {
		return fmt.Errorf("check %s: %w", d, err)
	}
	return nil
}

// writeBlob stores small content (a manifest) as blob d.
// Preconditions: s.gcMu is held.
func (s *Store) writeBlob(d digest.Digest, content []byte) error {
	dst := s.blobPath(d)
	if err := touch(dst); err == nil {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "uploads"), "manifest-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(content); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(0o444); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dst))
}

// Resolve returns the digest a reference (tag or digest) of repository name
// points to.
func (s *Store) Resolve(ctx context.Context, name, ref string) (digest.Digest, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if strings.Contains(ref, ":") {
		d, err := ParseDigest(ref)
		if err != nil {
			return "", err
		}
		return d, nil
	}
	if !ValidTag(ref) {
		return "", errdefs.InvalidArgument("invalid tag %q", ref)
	}
	b, err := os.ReadFile(s.repoPath(name, "_tags", ref))
	if errors.Is(err, fs.ErrNotExist) {
		return "", errdefs.NotFound("manifest %s:%s not found", name, ref)
	} else if err != nil {
		return "", fmt.Errorf("resolve %s:%s: %w", name, ref, err)
	}
	d, err := digest.Parse(string(bytes.TrimSpace(b)))
	if err != nil {
		return "", fmt.Errorf("resolve %s:%s: corrupt tag: %w", name, ref, err)
	}
	return d, nil
}

// StatTag returns the digest tag points to and when it was last written
// or touched (see TouchTag).
func (s *Store) StatTag(ctx context.Context, name, tag string) (digest.Digest, time.Time, error) {
	d, err := s.Resolve(ctx, name, tag)
	if err != nil {
		return "", time.Time{}, err
	}
	st, err := os.Stat(s.repoPath(name, "_tags", tag))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("stat tag %s:%s: %w", name, tag, err)
	}
	return d, st.ModTime(), nil
}

// TouchTag marks tag as current now; a pull-through cache notes this way
// when it last found the tag unchanged upstream.
func (s *Store) TouchTag(ctx context.Context, name, tag string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !ValidTag(tag) {
		return errdefs.InvalidArgument("invalid tag %q", tag)
	}
	return touch(s.repoPath(name, "_tags", tag))
}

// StatManifest returns a manifest's digest, media type and size (in
// Content's place, Content is nil).
func (s *Store) StatManifest(ctx context.Context, name, ref string) (Manifest, int64, error) {
	d, err := s.Resolve(ctx, name, ref)
	if err != nil {
		return Manifest{}, 0, err
	}
	mt, err := os.ReadFile(s.repoPath(name, "_manifests", digestPath(d)))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, 0, errdefs.NotFound("manifest %s@%s not found", name, d)
	} else if err != nil {
		return Manifest{}, 0, fmt.Errorf("stat manifest %s@%s: %w", name, d, err)
	}
	st, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, 0, errdefs.NotFound("manifest %s@%s not found", name, d)
	} else if err != nil {
		return Manifest{}, 0, fmt.Errorf("stat manifest %s@%s: %w", name, d, err)
	}
	return Manifest{Digest: d, MediaType: string(mt)}, st.Size(), nil
}

// GetManifest returns a manifest by tag or digest.
func (s *Store) GetManifest(ctx context.Context, name, ref string) (Manifest, error) {
	m, _, err := s.StatManifest(ctx, name, ref)
	if err != nil {
		return Manifest{}, err
	}
	b, err := os.ReadFile(s.blobPath(m.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, errdefs.NotFound("manifest %s@%s not found", name, m.Digest)
	} else if err != nil {
		return Manifest{}, fmt.Errorf("read manifest %s@%s: %w", name, m.Digest, err)
	}
	m.Content = b
	return m, nil
}

// DeleteManifest removes a manifest from repository name, with the tags
// that point to it and its entry in its subject's referrers.
func (s *Store) DeleteManifest(ctx context.Context, name string, d digest.Digest) error {
	m, err := s.GetManifest(ctx, name, d.String())
	if err != nil {
		return err
	}
	tags, err := s.Tags(ctx, name)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if td, err := s.Resolve(ctx, name, t); err == nil && td == d {
			if err := os.Remove(s.repoPath(name, "_tags", t)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("delete manifest %s: untag %s: %w", d, t, err)
			}
		}
	}
	if subj := subjectOf(m.Content); subj != "" {
		p := s.repoPath(name, "_referrers", digestPath(subj), referrerFile(d))
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete manifest %s: %w", d, err)
		}
	}
	if err := os.Remove(s.repoPath(name, "_manifests", digestPath(d))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete manifest %s: %w", d, err)
	}
	return nil
}

func subjectOf(content []byte) digest.Digest {
	var m struct {
		Subject *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"subject"`
	}
	if json.Unmarshal(content, &m) != nil || m.Subject == nil || m.Subject.Digest.Validate() != nil {
		return ""
	}
	return m.Subject.Digest
}

// DeleteTag removes a tag of repository name.
func (s *Store) DeleteTag(ctx context.Context, name, tag string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !ValidTag(tag) {
		return errdefs.InvalidArgument("invalid tag %q", tag)
	}
	err := os.Remove(s.repoPath(name, "_tags", tag))
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("tag %s:%s not found", name, tag)
	} else if err != nil {
		return fmt.Errorf("delete tag %s:%s: %w", name, tag, err)
	}
	return nil
}

// Tags lists the tags of repository name in lexical order.
func (s *Store) Tags(ctx context.Context, name string) ([]string, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.repoPath(name, "_tags"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", name, err)
	}
	tags := make([]string, 0, len(ents))
	for _, e := range ents {
		if ValidTag(e.Name()) && !strings.HasPrefix(e.Name(), ".") {
			tags = append(tags, e.Name())
		}
	}
	sort.Strings(tags)
	return tags, nil
}

// Referrers returns the descriptors (JSON) of the manifests of repository
// name whose subject is d.
func (s *Store) Referrers(ctx context.Context, name string, d digest.Digest) ([][]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	dir := s.repoPath(name, "_referrers", digestPath(d))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list referrers of %s: %w", d, err)
	}
	var out [][]byte
	for _, e := range ents {
		alg, enc, ok := strings.Cut(e.Name(), "-")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rd := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
		if ok, _ := exists(s.repoPath(name, "_manifests", digestPath(rd))); !ok {
			continue // deleted or collected
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, b)
	}
	return out, nil
}
