package content

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Writer streams a blob into the store. Nothing is visible until Commit;
// Close without Commit discards what was written.
type Writer struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	size int64
	done bool
}

// Writer starts a new blob.
func (s *Store) Writer(ctx context.Context) (*Writer, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "ingest"), "blob-")
	if err != nil {
		return nil, fmt.Errorf("start blob: %w", err)
	}
	return &Writer{s: s, f: f, h: digest.SHA256.Hash()}, nil
}

// Write appends p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.size += int64(n)
	return n, err
}

// Digest is the digest of what was written so far.
func (w *Writer) Digest() digest.Digest { return digest.NewDigest(digest.SHA256, w.h) }

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.size }

// Path is the private file being written; callers may read it back before
// Commit (for instance to unpack a layer whose digest is known only at the end).
func (w *Writer) Path() string { return w.f.Name() }

// Commit verifies the digest (when expected is not empty), syncs the file and
// publishes it as a blob. Committing a blob that already exists succeeds and
// keeps the existing copy.
func (w *Writer) Commit(ctx context.Context, expected digest.Digest) (Info, error) {
	if w.done {
		return Info{}, errors.New("commit blob: writer already closed")
	}
	d := w.Digest()
	if expected != "" && expected != d {
		w.Close()
		return Info{}, errdefs.DataCorrupt("blob digest mismatch: expected %s, got %s", expected, d)
	}
	dst, err := w.s.BlobPath(d)
	if err != nil {
		w.Close()
		return Info{}, err
	}
	if st, err := os.Stat(dst); err == nil {
		w.Close()
		return Info{Digest: d, Size: st.Size(), ModTime: st.ModTime()}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		w.Close()
		return Info{}, fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := w.f.Sync(); err != nil {
		w.Close()
		return Info{}, fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := w.f.Chmod(0o444); err != nil {
		w.Close()
		return Info{}, fmt.Errorf("commit blob %s: %w", d, err)
	}
	w.f.Close()
	w.done = true
	if err := os.Rename(w.f.Name(), dst); err != nil {
		os.Remove(w.f.Name())
		return Info{}, fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(dst)); err != nil {
		return Info{}, fmt.Errorf("commit blob %s: %w", d, err)
	}
	st, err := os.Stat(dst)
	if err != nil {
		return Info{}, fmt.Errorf("commit blob %s: %w", d, err)
	}
	return Info{Digest: d, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Close discards the blob unless it was committed.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}
