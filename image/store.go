package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/reference"
)

// Record is what the store keeps about one image.
type Record struct {
	ID       digest.Digest      `json:"id"` // digest of the config blob
	Manifest ocispec.Descriptor `json:"manifest"`
	// DiffIDs are the uncompressed digests of the layers, bottom first.
	DiffIDs []digest.Digest `json:"diffIDs"`
	// Size is the total uncompressed size of the layers.
	Size    int64     `json:"size"`
	Created time.Time `json:"created"` // from the config
	Added   time.Time `json:"added"`   // when this store first had it
	// Parent is the image this one was built or committed from, if local.
	Parent digest.Digest `json:"parent,omitempty"`
}

// DB is the whole metadata of the image store at one moment.
type DB struct {
	Images map[digest.Digest]*Record `json:"images"`
	// Tags maps a normalized name:tag ("docker.io/library/busybox:latest")
	// to an image ID.
	Tags map[string]digest.Digest `json:"tags"`
	// Digests maps a normalized name@digest (the manifest digest as a
	// registry knows it) to an image ID.
	Digests map[string]digest.Digest `json:"digests"`
}

// Store keeps the DB in one JSON file, replaced atomically on every change
// under an flock(2) held only for the read-modify-write itself. Readers take
// no lock: a rename is atomic, so they see a whole DB, old or new.
type Store struct {
	dir       string
	indexPath string
}

// Open opens (creating if needed) the store in dir. If indexPath is not
// empty, every change also rewrites the OCI index.json there, so that the
// content store is a complete OCI image layout that other tools can read.
func Open(dir, indexPath string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	return &Store{dir: dir, indexPath: indexPath}, nil
}

func (s *Store) dbPath() string { return filepath.Join(s.dir, "images.json") }

// Load returns the current DB. It never blocks on writers.
func (s *Store) Load(ctx context.Context) (*DB, error) {
	b, err := os.ReadFile(s.dbPath())
	if errors.Is(err, fs.ErrNotExist) {
		return emptyDB(), nil
	} else if err != nil {
		return nil, fmt.Errorf("read image store: %w", err)
	}
	db := emptyDB()
	if err := json.Unmarshal(b, db); err != nil {
		return nil, fmt.Errorf("read image store %s: %w", s.dbPath(), err)
	}
	return db, nil
}

func emptyDB() *DB {
	return &DB{Images: map[digest.Digest]*Record{}, Tags: map[string]digest.Digest{}, Digests: map[string]digest.Digest{}}
}

// Update runs fn on the current DB and saves what it leaves, atomically and
// serialized with every other writer (in this process or another). fn must
// be quick and must not wait on the user or the network. If fn returns an
// error nothing is saved.
func (s *Store) Update(ctx context.Context, fn func(db *DB) error) error {
	l, err := fsutil.LockFile(filepath.Join(s.dir, "images.lock"))
	if err != nil {
		return err
	}
	defer l.Unlock()
	db, err := s.Load(ctx)
	if err != nil {
		return err
	}
	if err := fn(db); err != nil {
		return err
	}
	db.dropDanglingNames()
	b, err := json.MarshalIndent(db, "", "  ")
	if err != nil {
		return fmt.Errorf("write image store: %w", err)
	}
	if err := fsutil.WriteFileAtomic(s.dbPath(), b, 0o600); err != nil {
		return fmt.Errorf("write image store: %w", err)
	}
	if s.indexPath != "" {
		if err := fsutil.WriteFileAtomic(s.indexPath, db.ociIndex(), 0o644); err != nil {
			return fmt.Errorf("write OCI index: %w", err)
		}
	}
	return nil
}

// dropDanglingNames removes names whose image is gone.
func (db *DB) dropDanglingNames() {
	for _, m := range []map[string]digest.Digest{db.Tags, db.Digests} {
		for k, id := range m {
			if db.Images[id] == nil {
				delete(m, k)
			}
		}
	}
}

// ociIndex renders the DB as an OCI index.json: one descriptor per name, and
// one unnamed descriptor per untagged image.
func (db *DB) ociIndex() []byte {
	type index struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Manifests     []ocispec.Descriptor `json:"manifests"`
	}
	idx := index{SchemaVersion: 2, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	for _, id := range db.SortedIDs() {
		r := db.Images[id]
		tags := db.TagsOf(id)
		if len(tags) == 0 {
			idx.Manifests = append(idx.Manifests, r.Manifest)
		}
		for _, t := range tags {
			d := r.Manifest
			d.Annotations = map[string]string{"io.containerd.image.name": t, ocispec.AnnotationRefName: t}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	b, _ := json.Marshal(idx)
	return b
}

// SortedIDs lists image IDs, newest first (the order `images` prints).
func (db *DB) SortedIDs() []digest.Digest {
	ids := make([]digest.Digest, 0, len(db.Images))
	for id := range db.Images {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := db.Images[ids[i]], db.Images[ids[j]]
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		return ids[i] < ids[j]
	})
	return ids
}

// TagsOf returns the sorted normalized name:tag references of an image.
func (db *DB) TagsOf(id digest.Digest) []string {
	return keysFor(db.Tags, id)
}

// DigestsOf returns the sorted normalized name@digest references of an image.
func (db *DB) DigestsOf(id digest.Digest) []string {
	return keysFor(db.Digests, id)
}

func keysFor(m map[string]digest.Digest, id digest.Digest) []string {
	var out []string
	for k, v := range m {
		if v == id {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Resolve finds the image a user means by name: a name, name:tag,
// name@digest, a full image ID (with or without "sha256:") or a unique
// prefix of one, as Docker resolves them.
func (db *DB) Resolve(name string) (*Record, error) {
	if name == "" {
		return nil, errdefs.InvalidArgument("invalid reference format: empty image name")
	}
	if id, ok := parseID(name); ok {
		if r := db.Images[id]; r != nil {
			return r, nil
		}
		return nil, errdefs.NotFound("No such image: %s", name)
	}
	ref, refErr := reference.ParseNormalizedNamed(name)
	if refErr == nil {
		if c, ok := ref.(reference.Canonical); ok {
			if id, ok := db.Digests[reference.TrimNamed(c).String()+"@"+c.Digest().String()]; ok {
				return db.Images[id], nil
			}
			// A manifest digest of a local image without a recorded name.
			for _, r := range db.Images {
				if r.Manifest.Digest == c.Digest() {
					for _, t := range db.TagsOf(r.ID) {
						if n, err := reference.ParseNormalizedNamed(t); err == nil && n.Name() == c.Name() {
							return r, nil
						}
					}
				}
			}
		} else {
			if id, ok := db.Tags[reference.TagNameOnly(ref).String()]; ok {
				return db.Images[id], nil
			}
		}
	}
	if isHexPrefix(name) {
		r, err := db.byPrefix(name)
		if err == nil || !errdefs.IsNotFound(err) {
			return r, err
		}
	}
	if refErr != nil {
		return nil, errdefs.InvalidArgument("invalid reference format: %s", refErrText(name, refErr))
	}
	return nil, errdefs.NotFound("No such image: %s", Familiar(name))
}

func refErrText(name string, err error) string {
	if errors.Is(err, reference.ErrNameContainsUppercase) {
		return fmt.Sprintf("repository name (%s) must be lowercase", name)
	}
	return fmt.Sprintf("%q: %v", name, err)
}

// Familiar shortens what the user typed the way Docker prints it back
// (docker.io/library/busybox:latest is busybox:latest). Input that is not a
// reference comes back unchanged.
func Familiar(name string) string {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	if _, ok := ref.(reference.Digested); !ok {
		ref = reference.TagNameOnly(ref)
	}
	return reference.FamiliarString(ref)
}

func (db *DB) byPrefix(prefix string) (*Record, error) {
	prefix = strings.TrimPrefix(prefix, "sha256:")
	var found *Record
	for id, r := range db.Images {
		if strings.HasPrefix(id.Encoded(), prefix) {
			if found != nil {
				return nil, errdefs.InvalidArgument("image ID prefix %q is ambiguous: matches %s and %s", prefix, found.ID.Encoded()[:12], id.Encoded()[:12])
			}
			found = r
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("No such image: %s", prefix)
	}
	return found, nil
}

// parseID recognizes a full image ID, with or without its algorithm.
func parseID(s string) (digest.Digest, bool) {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) != 64 || !isHexPrefix(s) {
		return "", false
	}
	return digest.NewDigestFromEncoded(digest.SHA256, s), true
}

func isHexPrefix(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseTag parses a name to tag an image with: name or name:tag, never a
// digest, normalized as Docker does (busybox is docker.io/library/busybox:latest).
func ParseTag(s string) (reference.NamedTagged, error) {
	ref, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference format: %s", refErrText(s, err))
	}
	if _, ok := ref.(reference.Digested); ok {
		return nil, errdefs.InvalidArgument("invalid reference format: %q: a tag cannot contain a digest", s)
	}
	return reference.TagNameOnly(ref).(reference.NamedTagged), nil
}
