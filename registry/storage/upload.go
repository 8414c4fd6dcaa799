package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

// An upload is a blob being received, possibly in many requests. Its bytes
// live in uploads/<id>/data and the repository it belongs to in
// uploads/<id>/repo, so a restarted server resumes it where it was.
type upload struct {
	mu   sync.Mutex // serializes requests on one upload
	id   string
	repo string
	f    *os.File // data, opened for appending
	size int64
	// h hashes data with sha256 while it arrives; nil when it must be
	// recomputed from the file (after a restart, or a failed write).
	h    hash.Hash
	gone bool // committed or cancelled
}

// UploadInfo describes an upload in progress.
type UploadInfo struct {
	ID   string
	Size int64 // bytes received so far
}

var idRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{32}$`) })

func (s *Store) uploadDir(id string) string { return filepath.Join(s.root, "uploads", id) }

// StartUpload starts an upload into repository name.
func (s *Store) StartUpload(ctx context.Context, name string) (UploadInfo, error) {
	if err := checkName(name); err != nil {
		return UploadInfo{}, err
	}
	id := newID()
	dir := s.uploadDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return UploadInfo{}, fmt.Errorf("start upload: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return UploadInfo{}, fmt.Errorf("start upload: %w", err)
	}
	// Not synced: the upload is temporary until its commit, which syncs
	// what it publishes. A killed server finds it again; a machine that
	// lost power may lose it, and the client starts over.
	if err := os.WriteFile(filepath.Join(dir, "repo"), []byte(name), 0o600); err != nil {
		f.Close()
		os.RemoveAll(dir)
		return UploadInfo{}, fmt.Errorf("start upload: %w", err)
	}
	u := &upload{id: id, repo: name, f: f, h: sha256.New()}
	s.mu.Lock()
	s.uploads[id] = u
	s.mu.Unlock()
	return UploadInfo{ID: id}, nil
}

// lookup finds upload id of repository name, loading it from disk after a
// restart. The caller must lock u.mu and check u.gone.
func (s *Store) lookup(name, id string) (*upload, error) {
	if !idRE().MatchString(id) {
		return nil, errdefs.NotFound("upload %q not found", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.uploads[id]; ok {
		if u.repo != name {
			return nil, errdefs.NotFound("upload %s not found in %s", id, name)
		}
		return u, nil
	}
	dir := s.uploadDir(id)
	repo, err := os.ReadFile(filepath.Join(dir, "repo"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("upload %s not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("load upload %s: %w", id, err)
	}
	if string(repo) != name {
		return nil, errdefs.NotFound("upload %s not found in %s", id, name)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("load upload %s: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("load upload %s: %w", id, err)
	}
	u := &upload{id: id, repo: name, f: f, size: st.Size()}
	s.uploads[id] = u
	return u, nil
}

func (s *Store) acquire(name, id string) (*upload, error) {
	u, err := s.lookup(name, id)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	if u.gone {
		u.mu.Unlock()
		return nil, errdefs.NotFound("upload %s not found", id)
	}
	return u, nil
}

// UploadStatus returns how much of upload id has been received.
func (s *Store) UploadStatus(ctx context.Context, name, id string) (UploadInfo, error) {
	u, err := s.acquire(name, id)
	if err != nil {
		return UploadInfo{}, err
	}
	defer u.mu.Unlock()
	return UploadInfo{ID: id, Size: u.size}, nil
}

// AppendUpload appends r to upload id. When offset is not negative it must
// equal the bytes received so far, or an errdefs.ErrConflict error is
// returned and nothing is written. What was received before an error of r
// stays received: the client may ask for the status and resume.
func (s *Store) AppendUpload(ctx context.Context, name, id string, offset int64, r io.Reader) (UploadInfo, error) {
	u, err := s.acquire(name, id)
	if err != nil {
		return UploadInfo{}, err
	}
	defer u.mu.Unlock()
	if offset >= 0 && offset != u.size {
		return UploadInfo{ID: id, Size: u.size}, errdefs.Conflict("upload %s: chunk starts at %d, expected %d", id, offset, u.size)
	}
	n, err := newReceiver(u.f, u.h, u.size).ReadFrom(r)
	u.size += n
	if err != nil {
		// The file and the hash may disagree on a short write: recompute at commit.
		u.h = nil
		if st, serr := u.f.Stat(); serr == nil {
			u.size = st.Size()
		}
		return UploadInfo{ID: id, Size: u.size}, fmt.Errorf("upload %s: %w", id, err)
	}
	return UploadInfo{ID: id, Size: u.size}, nil
}

// CommitUpload verifies that upload id has digest d and publishes it as a
// blob of its repository. On a digest mismatch (errdefs.ErrDataCorrupt) the
// upload is discarded and nothing is stored.
func (s *Store) CommitUpload(ctx context.Context, name, id string, d digest.Digest) (BlobInfo, error) {
	u, err := s.acquire(name, id)
	if err != nil {
		return BlobInfo{}, err
	}
	defer u.mu.Unlock()
	got, err := u.digest(d.Algorithm())
	if err != nil {
		return BlobInfo{}, fmt.Errorf("upload %s: %w", id, err)
	}
	if got != d {
		s.discard(u)
		return BlobInfo{}, errdefs.DataCorrupt("blob digest mismatch: expected %s, got %s", d, got)
	}
	if err := s.publish(u.f, d, name); err != nil {
		return BlobInfo{}, err
	}
	size := u.size
	s.discard(u)
	return BlobInfo{Digest: d, Size: size}, nil
}

// digest returns the digest of what u received, with algorithm alg.
func (u *upload) digest(alg digest.Algorithm) (digest.Digest, error) {
	if alg == digest.SHA256 && u.h != nil {
		return digest.NewDigest(alg, u.h), nil
	}
	f, err := os.Open(u.f.Name())
	if err != nil {
		return "", err
	}
	defer f.Close()
	return alg.FromReader(f)
}

// CancelUpload discards upload id.
func (s *Store) CancelUpload(ctx context.Context, name, id string) error {
	u, err := s.acquire(name, id)
	if err != nil {
		return err
	}
	defer u.mu.Unlock()
	s.discard(u)
	return nil
}

// discard forgets u and removes its files. The caller holds u.mu.
func (s *Store) discard(u *upload) {
	u.gone = true
	u.f.Close()
	os.RemoveAll(s.uploadDir(u.id))
	s.mu.Lock()
	delete(s.uploads, u.id)
	s.mu.Unlock()
}

// Close releases the files of uploads in progress; they stay on disk and
// resume when the store is opened again.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.uploads {
		u.f.Close()
		delete(s.uploads, id)
	}
	return nil
}
