// Package storage owns the registry's bytes on disk: blobs addressed by
// digest and shared by every repository, the repositories that link to them
// (blob links, manifest links, tags, the referrers index), and the uploads in
// progress.
//
// The layout under the root directory:
//
//	blobs/<alg>/<hex>                       content, immutable once published
//	uploads/<id>/data, uploads/<id>/repo    uploads in progress
//	repositories/<name>/_blobs/<alg>/<hex>  the blob is part of the repository
//	repositories/<name>/_manifests/<alg>/<hex>   a manifest of the repository; holds its media type
//	repositories/<name>/_tags/<tag>         holds the digest the tag points to
//	repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   descriptor (JSON) of a manifest whose subject is <alg>:<hex>
//
// Repository name components never start with an underscore, so a nested
// repository never collides with the directories above.
//
// Crash safety: a blob is written under uploads/, fsynced and renamed into
// blobs/ only once its digest is verified; links and tags are replaced
// atomically (temporary file, fsync, rename) and only after what they point
// to is durable. A killed server leaves at most a stale upload, which a
// restarted server resumes or garbage collection removes.
//
// Garbage collection (see GC) runs while the store serves: writers hold a
// shared lock around "check that a blob exists, then refer to it", and
// refresh the modification time of what they refer to; the collector deletes
// only what is older than the start of its run, under the exclusive lock.
package storage

import (
	"context"
	"crypto/rand"
	_ "crypto/sha256" // digest algorithms served
	_ "crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Store is a registry's storage rooted at a directory. Its methods are safe
// for concurrent use.
type Store struct {
	root string

	// gcMu is held shared by writers between checking that something exists
	// and publishing a reference to it, and exclusively by the garbage
	// collector while it deletes.
	gcMu sync.RWMutex

	mu      sync.Mutex // guards uploads
	uploads map[string]*upload
}

// Open opens (creating if needed) the store rooted at root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs", "uploads", "repositories"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("open registry storage: %w", err)
		}
	}
	return &Store{root: root, uploads: map[string]*upload{}}, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

var (
	nameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	// Compiled on first use, not at init: every berth command links this
	// package, and only the registry needs them.
	nameRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^` + nameComponent + `(?:/` + nameComponent + `)*$`)
	})
	tagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`) })
)

// ValidName reports whether name is a valid repository name.
func ValidName(name string) bool { return len(name) <= 255 && nameRE().MatchString(name) }

// ValidTag reports whether tag is a valid tag.
func ValidTag(tag string) bool { return tagRE().MatchString(tag) }

// ParseDigest parses a digest of an algorithm the store supports.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errdefs.InvalidArgument("invalid digest %q: %v", s, err)
	}
	if !d.Algorithm().Available() {
		return "", errdefs.InvalidArgument("unsupported digest algorithm %q", d.Algorithm())
	}
	return d, nil
}

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

func (s *Store) repoPath(name string, elem ...string) string {
	return filepath.Join(append([]string{s.root, "repositories", filepath.FromSlash(name)}, elem...)...)
}

func digestPath(d digest.Digest) string {
	return filepath.Join(d.Algorithm().String(), d.Encoded())
}

func checkName(name string) error {
	if !ValidName(name) {
		return errdefs.InvalidArgument("invalid repository name %q", name)
	}
	return nil
}

// touch marks path as used now, so a concurrent GC run keeps it.
func touch(path string) error {
	now := time.Now()
	return os.Chtimes(path, now, now)
}

// writeLink atomically writes a small file, creating its directory.
func writeLink(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, data, 0o644); err != nil {
		return err
	}
	return fsutil.SyncDir(dir)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// BlobInfo describes a blob.
type BlobInfo struct {
	Digest digest.Digest
	Size   int64
}

// StatBlob returns the size of a blob of repository name, or an
// errdefs.ErrNotFound error when the repository has no such blob.
func (s *Store) StatBlob(ctx context.Context, name string, d digest.Digest) (BlobInfo, error) {
	if err := checkName(name); err != nil {
		return BlobInfo{}, err
	}
	ok, err := exists(s.repoPath(name, "_blobs", digestPath(d)))
	if err != nil {
		return BlobInfo{}, fmt.Errorf("stat blob %s in %s: %w", d, name, err)
	}
	if !ok {
		// Manifests are blobs of their repository too.
		ok, err = exists(s.repoPath(name, "_manifests", digestPath(d)))
		if err != nil {
			return BlobInfo{}, fmt.Errorf("stat blob %s in %s: %w", d, name, err)
		}
	}
	if !ok {
		return BlobInfo{}, errdefs.NotFound("blob %s not found in %s", d, name)
	}
	st, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return BlobInfo{}, errdefs.NotFound("blob %s not found in %s", d, name)
	} else if err != nil {
		return BlobInfo{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return BlobInfo{Digest: d, Size: st.Size()}, nil
}

// OpenBlob opens a blob of repository name for reading. The caller closes it.
func (s *Store) OpenBlob(ctx context.Context, name string, d digest.Digest) (*os.File, BlobInfo, error) {
	info, err := s.StatBlob(ctx, name, d)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, BlobInfo{}, errdefs.NotFound("blob %s not found in %s", d, name)
	} else if err != nil {
		return nil, BlobInfo{}, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, info, nil
}

// LinkBlob makes an existing blob part of repository name (a cross-repository
// mount). from names the repository the blob must already belong to; when it
// is empty, any copy of the blob will do. It returns an errdefs.ErrNotFound
// error when there is nothing to link.
func (s *Store) LinkBlob(ctx context.Context, name, from string, d digest.Digest) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if from != "" {
		if _, err := s.StatBlob(ctx, from, d); err != nil {
			return err
		}
	}
	bp := s.blobPath(d)
	if err := touch(bp); errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("blob %s not found", d)
	} else if err != nil {
		return fmt.Errorf("link blob %s: %w", d, err)
	}
	if err := s.linkBlobLocked(name, d); err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, name, err)
	}
	return nil
}

func (s *Store) linkBlobLocked(name string, d digest.Digest) error {
	p := s.repoPath(name, "_blobs", digestPath(d))
	created, err := createLink(p)
	if err != nil || !created {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

// createLink makes the empty file p (a blob link), or refreshes its
// modification time when it exists, and reports whether it created it. An
// empty file needs neither a temporary name nor an fsync of its own: it
// exists or it does not, and the caller makes its directory durable.
func createLink(p string) (bool, error) {
	if err := touch(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// DeleteBlob removes a blob from repository name. The bytes stay until
// garbage collection finds no other repository using them.
func (s *Store) DeleteBlob(ctx context.Context, name string, d digest.Digest) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := os.Remove(s.repoPath(name, "_blobs", digestPath(d)))
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("blob %s not found in %s", d, name)
	} else if err != nil {
		return fmt.Errorf("delete blob %s from %s: %w", d, name, err)
	}
	return nil
}

// PutBlob stores the bytes of r, which must have digest d, as a blob of
// repository name. Nothing is stored when the digest does not match (an
// errdefs.ErrDataCorrupt error).
func (s *Store) PutBlob(ctx context.Context, name string, d digest.Digest, r io.Reader) (BlobInfo, error) {
	w, err := s.NewBlobWriter(name, d)
	if err != nil {
		return BlobInfo{}, err
	}
	defer w.Close()
	if _, err := w.rcv.ReadFrom(r); err != nil {
		return BlobInfo{}, fmt.Errorf("put blob %s: %w", d, err)
	}
	return w.Commit()
}

// A BlobWriter receives a blob whose digest is known before its bytes. Its
// file (Path) may be read while it is written: a pull-through cache serves
// clients from it while the bytes arrive from upstream.
type BlobWriter struct {
	s    *Store
	name string
	d    digest.Digest
	f    *os.File
	v    digest.Verifier
	rcv  *receiver // writes f, hashes into v
	done bool
}

// NewBlobWriter starts receiving blob d of repository name. The caller
// ends with Commit, or Close to discard it.
func (s *Store) NewBlobWriter(name string, d digest.Digest) (*BlobWriter, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "uploads"), "put-")
	if err != nil {
		return nil, fmt.Errorf("put blob: %w", err)
	}
	v := d.Verifier()
	return &BlobWriter{s: s, name: name, d: d, f: f, v: v, rcv: newReceiver(f, v, 0)}, nil
}

// Write implements io.Writer.
func (w *BlobWriter) Write(p []byte) (int, error) { return w.rcv.Write(p) }

// ReadFrom implements io.ReaderFrom, receiving r through a large buffer.
func (w *BlobWriter) ReadFrom(r io.Reader) (int64, error) { return w.rcv.ReadFrom(r) }

// Path is the file being written, until Commit or Close.
func (w *BlobWriter) Path() string { return w.f.Name() }

// Commit verifies the digest and publishes the blob. Nothing is stored when
// the digest does not match (an errdefs.ErrDataCorrupt error).
func (w *BlobWriter) Commit() (BlobInfo, error) {
	defer w.Close()
	if !w.v.Verified() {
		return BlobInfo{}, errdefs.DataCorrupt("blob digest mismatch: content does not match %s", w.d)
	}
	if err := w.s.publish(w.f, w.d, w.name); err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Digest: w.d, Size: w.rcv.off}, nil
}

// Close discards what was written unless it was committed.
func (w *BlobWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name()) // gone already once published
	return nil
}

// publish makes the verified, still open file f the blob d and links it into
// repository name. f's file is renamed away or left for the caller to remove.
//
// Three fsyncs: the data, the blob's directory and the link's directory.
// The data is synced before the rename, so a crash never shows a partial
// blob; the link is created before either directory is synced, so on ext4
// the first directory fsync commits both and the second finds nothing left.
func (s *Store) publish(f *os.File, d digest.Digest, name string) error {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	dst := s.blobPath(d)
	link := s.repoPath(name, "_blobs", digestPath(d))
	renamed := false
	if err := touch(dst); err == nil {
		// Already stored: keep the existing copy.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("publish blob %s: %w", d, err)
	} else {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("publish blob %s: %w", d, err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("publish blob %s: %w", d, err)
		}
		if err := f.Chmod(0o444); err != nil {
			return fmt.Errorf("publish blob %s: %w", d, err)
		}
		if err := os.Rename(f.Name(), dst); err != nil {
			return fmt.Errorf("publish blob %s: %w", d, err)
		}
		renamed = true
	}
	linked, err := createLink(link)
	if err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, name, err)
	}
	if renamed {
		if err := fsutil.SyncDir(filepath.Dir(dst)); err != nil {
			return fmt.Errorf("publish blob %s: %w", d, err)
		}
	}
	if linked {
		if err := fsutil.SyncDir(filepath.Dir(link)); err != nil {
			return fmt.Errorf("link blob %s into %s: %w", d, name, err)
		}
	}
	return nil
}

// Repositories lists the repositories in lexical order.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	base := filepath.Join(s.root, "repositories")
	var names []string
	err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() || p == base {
			return nil
		}
		if strings.HasPrefix(e.Name(), "_") {
			return fs.SkipDir
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.isRepo(p) {
			rel, _ := filepath.Rel(base, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

func (s *Store) isRepo(dir string) bool {
	for _, d := range []string{"_manifests", "_blobs", "_tags"} {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if err == nil && len(ents) > 0 {
			return true
		}
	}
	return false
}

// RepositoryExists reports whether repository name holds anything.
func (s *Store) RepositoryExists(ctx context.Context, name string) bool {
	return ValidName(name) && s.isRepo(s.repoPath(name))
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
