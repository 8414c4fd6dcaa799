// Package volume owns named volumes: directories under the data root that
// outlive the containers mounting them. A volume's record is created
// exclusively (two creators of one name get one volume) and its data
// directory is filled from the image on first use, as Docker does.
package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Volume is Docker's volume inspect shape.
type Volume struct {
	CreatedAt  time.Time
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
	// Anonymous volumes are made for an image's VOLUME and removed with
	// `rm -v` or `--rm`.
	Anonymous bool `json:"-"`
}

type record struct {
	Volume
	Anonymous bool
	// Filled says the data directory was populated from an image already.
	Filled bool
}

// Store keeps volumes under a directory: <dir>/<name>/{volume.json,_data}.
type Store struct{ dir string }

// OpenStore opens (creating) the store in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open volume store: %w", err)
	}
	return &Store{dir: dir}, nil
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// NewAnonymousName returns a name for an anonymous volume: 64 hex digits.
func NewAnonymousName() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Create makes a volume, or returns the existing one of that name (Docker's
// `volume create` is idempotent).
func (s *Store) Create(ctx context.Context, name string, labels, opts map[string]string, anonymous bool) (*Volume, error) {
	if name == "" {
		name, anonymous = NewAnonymousName(), true
	}
	if !validName.MatchString(name) {
		return nil, errdefs.InvalidArgument("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", name, name)
	}
	if len(opts) > 0 {
		return nil, errdefs.InvalidArgument("create %s: the local driver takes no options here", name)
	}
	dir := filepath.Join(s.dir, name)
	tmp, err := os.MkdirTemp(s.dir, ".new-")
	if err != nil {
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, "_data"), 0o755); err != nil {
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	r := record{Volume: Volume{CreatedAt: time.Now().UTC().Truncate(time.Second), Driver: "local", Labels: labels,
		Mountpoint: filepath.Join(dir, "_data"), Name: name, Options: map[string]string{}, Scope: "local"}, Anonymous: anonymous}
	if err := writeRecord(tmp, &r); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return s.Get(ctx, name)
		}
		return nil, fmt.Errorf("create volume %s: %w", name, err)
	}
	v := r.Volume
	v.Anonymous = anonymous
	return &v, nil
}

func writeRecord(dir string, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, "volume.json"), b, 0o600)
}

func (s *Store) read(name string) (*record, error) {
	if !validName.MatchString(name) {
		return nil, errdefs.NotFound("get %s: no such volume", name)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, name, "volume.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("get %s: no such volume", name)
	} else if err != nil {
		return nil, fmt.Errorf("read volume %s: %w", name, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read volume %s: %w", name, err)
	}
	r.Volume.Anonymous = r.Anonymous
	return &r, nil
}

// Get returns a volume by name.
func (s *Store) Get(ctx context.Context, name string) (*Volume, error) {
	r, err := s.read(name)
	if err != nil {
		return nil, err
	}
	return &r.Volume, nil
}

// List returns every volume, by name.
func (s *Store) List(ctx context.Context) ([]*Volume, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []*Volume
	for _, e := range ents {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		if v, err := s.Get(ctx, e.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// FillOnce runs fill with the volume's data directory the first time it is
// called for the volume (under the volume's lock), and never again.
func (s *Store) FillOnce(ctx context.Context, name string, fill func(dataDir string) error) error {
	l, err := fsutil.LockFile(filepath.Join(s.dir, name, "lock"))
	if err != nil {
		return err
	}
	defer l.Unlock()
	r, err := s.read(name)
	if err != nil {
		return err
	}
	if r.Filled {
		return nil
	}
	if err := fill(r.Mountpoint); err != nil {
		return fmt.Errorf("fill volume %s: %w", name, err)
	}
	r.Filled = true
	return writeRecord(filepath.Join(s.dir, name), r)
}

// Remove deletes a volume and its data. The caller checks it is unused.
func (s *Store) Remove(ctx context.Context, name string) error {
	if _, err := s.read(name); err != nil {
		return err
	}
	// Rename first so that a crash never leaves half a volume under its name.
	gone := filepath.Join(s.dir, ".rm-"+name)
	if err := os.Rename(filepath.Join(s.dir, name), gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}
