// Package content owns berth's blobs: immutable byte strings addressed by
// their digest, kept in an OCI image layout (blobs/sha256/<hex>) under the
// data root.
//
// A blob becomes visible only once its bytes are on disk and their digest is
// verified: writers stream into a private file under ingest/, which is
// fsynced and renamed into place on Commit. Two processes ingesting the same
// blob at once both succeed and one copy is kept; a crash leaves at most a
// stale ingest file, never a partial blob.
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Info describes a committed blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Store is a content-addressed blob store rooted at a directory.
// It holds no state in memory beyond its paths: many Stores, in many
// processes, may share one root.
type Store struct {
	root string
}

const layoutFile = `{"imageLayoutVersion":"1.0.0"}`

// Open opens (creating if needed) the store rooted at root.
func Open(root string) (*Store, error) {
	for _, d := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "ingest")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open content store: %w", err)
		}
	}
	lf := filepath.Join(root, "oci-layout")
	if _, err := os.Stat(lf); errors.Is(err, fs.ErrNotExist) {
		if err := fsutil.WriteFileAtomic(lf, []byte(layoutFile), 0o644); err != nil {
			return nil, fmt.Errorf("open content store: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// Root returns the directory of the store (an OCI image layout).
func (s *Store) Root() string { return s.root }

// BlobPath returns where the blob with digest d lives (whether or not it
// exists). It fails for digests that are not valid sha256 digests.
func (s *Store) BlobPath(d digest.Digest) (string, error) {
	if err := validate(d); err != nil {
		return "", err
	}
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded()), nil
}

func validate(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return errdefs.InvalidArgument("invalid digest %q: %v", d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return errdefs.InvalidArgument("unsupported digest algorithm %q", d.Algorithm())
	}
	return nil
}

// Info returns the blob's size, or an errdefs.ErrNotFound error.
func (s *Store) Info(ctx context.Context, d digest.Digest) (Info, error) {
	p, err := s.BlobPath(d)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, errdefs.NotFound("blob %s not found", d)
	} else if err != nil {
		return Info{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return Info{Digest: d, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Open opens the blob for reading. The caller closes it.
func (s *Store) Open(ctx context.Context, d digest.Digest) (*os.File, error) {
	p, err := s.BlobPath(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("blob %s not found", d)
	} else if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, nil
}

// ReadAll returns the blob's bytes, refusing blobs larger than limit (for
// manifests and configs, which are small JSON documents).
func (s *Store) ReadAll(ctx context.Context, d digest.Digest, limit int64) ([]byte, error) {
	f, err := s.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	if int64(len(b)) > limit {
		return nil, errdefs.InvalidArgument("blob %s is larger than %d bytes", d, limit)
	}
	return b, nil
}

// Delete removes the blob. Deleting a missing blob is not an error.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	p, err := s.BlobPath(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// Walk calls fn for every committed blob.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		st, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted while we walked
		} else if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		if err := fn(Info{Digest: d, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// CleanIngest removes ingest files older than age: what crashed writers left.
func (s *Store) CleanIngest(ctx context.Context, age time.Duration) error {
	dir := filepath.Join(s.root, "ingest")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean ingest: %w", err)
	}
	for _, e := range ents {
		st, err := e.Info()
		if err != nil || time.Since(st.ModTime()) < age {
			continue
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
	return nil
}

// Ingest copies r into the store and commits it. If expected is not empty
// the content must have that digest, or nothing is stored and an
// errdefs.ErrDataCorrupt error is returned.
func (s *Store) Ingest(ctx context.Context, r io.Reader, expected digest.Digest) (Info, error) {
	if expected != "" {
		if info, err := s.Info(ctx, expected); err == nil {
			// Already present: drain nothing, the bytes are known.
			return info, nil
		}
	}
	w, err := s.Writer(ctx)
	if err != nil {
		return Info{}, err
	}
	defer w.Close()
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		return Info{}, fmt.Errorf("ingest blob: %w", err)
	}
	return w.Commit(ctx, expected)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
