package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// The layout of a driver's directory:
//
//	lock                    flock(2)ed while references change
//	layers/<hex>/info.json  a layer, by the hex of its chain ID
//	layers/<hex>/fs/        its tree
//	active/<hex>/info.json  a writable snapshot, by the sha256 of its key
//	active/<hex>/...        upper/ and work/ (overlay) or fs/ (native)
//	tmp/                    directories being built or removed
//	tmp/spare-<n>/          empty writable snapshots ready for Prepare
//
// Everything is built in tmp/ and published by renaming it into place, and
// removed by renaming it into tmp/ first, so that a reader never sees half
// of a snapshot.

// driver is what differs between the overlay and native snapshotters.
type driver interface {
	name() string
	whiteouts() archive.WhiteoutMode
	// newLayer makes dir/fs ready for fill, given the chain's layer
	// directories, top first.
	newLayer(ctx context.Context, dir string, chain []string) error
	// newActive makes the writable directories of an active snapshot in
	// dir, given the chain's layer directories, top first.
	newActive(ctx context.Context, dir string, chain []string) error
	mounts(dir string, chain []string) []Mount
	upperDir(dir string) string
	// spares reports whether an empty writable snapshot can be made
	// before it is needed (see MakeSpares), and pristine whether the
	// removed, unmounted writable snapshot in dir is still such an empty
	// one.
	spares() bool
	pristine(dir string) bool
}

type store struct {
	root string
	d    driver
}

type layerInfo struct {
	ChainID digest.Digest `json:"chainID"`
	Parent  digest.Digest `json:"parent,omitempty"`
	Size    int64         `json:"size"`
	Created time.Time     `json:"created"`
}

type activeInfo struct {
	Key     string        `json:"key"`
	Parent  digest.Digest `json:"parent,omitempty"`
	Created time.Time     `json:"created"`
}

const infoFile = "info.json"

func newStore(root string, d driver) (*store, error) {
	s := &store{root: root, d: d}
	for _, sub := range []string{"layers", "active", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			return nil, fmt.Errorf("snapshot store %s: %w", root, err)
		}
	}
	// Layers and writable layers are made in tmp/: each in a block group
	// of its own choosing, with the files of its overlay mount.
	if err := fsutil.SpreadSubdirs(filepath.Join(root, "tmp")); err != nil {
		return nil, fmt.Errorf("snapshot store %s: %w", root, err)
	}
	return s, nil
}

func (s *store) Driver() string                     { return s.d.name() }
func (s *store) WhiteoutMode() archive.WhiteoutMode { return s.d.whiteouts() }

func (s *store) layerDir(id digest.Digest) string {
	return filepath.Join(s.root, "layers", id.Encoded())
}

func (s *store) activeDir(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.root, "active", hex.EncodeToString(sum[:]))
}

// lock takes the store's lock, which guards the references between
// snapshots (across processes too), and returns its release.
func (s *store) lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock snapshot store: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock snapshot store: %w", err)
	}
	return func() { f.Close() }, nil
}

func checkID(id digest.Digest, what string) error {
	if err := id.Validate(); err != nil {
		return errdefs.InvalidArgument("%s %q: %v", what, id, err)
	}
	return nil
}

// writeJSON writes v to path atomically: a temporary file, synced, renamed.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	if err = writeClose(f, b); err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// writeSynced writes v to path, which nobody else reads yet, and syncs it.
func writeSynced(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	return writeClose(f, b)
}

// writeClose writes b to f, syncs and closes it.
func writeClose(f *os.File, b []byte) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errdefs.DataCorrupt("%s: %v", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (s *store) readLayer(id digest.Digest) (Info, error) {
	var li layerInfo
	if err := readJSON(filepath.Join(s.layerDir(id), infoFile), &li); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Info{}, errdefs.NotFound("layer %s", id)
		}
		return Info{}, fmt.Errorf("layer %s: %w", id, err)
	}
	return Info(li), nil
}

// chain returns the fs directories of id and the layers below it, top first.
func (s *store) chain(id digest.Digest) ([]string, error) {
	var dirs []string
	for id != "" {
		info, err := s.readLayer(id)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, filepath.Join(s.layerDir(id), "fs"))
		id = info.Parent
	}
	return dirs, nil
}

// discard removes a directory of the store, first moving it aside.
func (s *store) discard(dir string) error {
	aside, err := s.moveAside(dir)
	if err != nil {
		return err
	}
	return os.RemoveAll(aside)
}

// moveAside renames dir into tmp/ as rm-<random>, where it is garbage:
// whoever moved it deletes it, and the next listing of the active
// snapshots deletes what a crash left there. (Renamed under a fresh name
// rather than into a fresh directory: one inode fewer to allocate for
// every container removed.)
func (s *store) moveAside(dir string) (string, error) {
	return s.renameToTemp(dir, discardedPrefix)
}

// discardedPrefix names what moveAside put in tmp/.
const discardedPrefix = "rm-"

// discardedGrace is how old a discarded snapshot must be before a listing
// deletes it: younger ones are being purged by whoever discarded them.
const discardedGrace = time.Minute

func (s *store) CreateLayer(ctx context.Context, chainID, parent digest.Digest, fill func(dir string) error) (Info, error) {
	if err := checkID(chainID, "chain ID"); err != nil {
		return Info{}, err
	}
	if parent != "" {
		if err := checkID(parent, "parent chain ID"); err != nil {
			return Info{}, err
		}
	}
	if _, err := s.readLayer(chainID); err == nil {
		return Info{}, errdefs.AlreadyExists("layer %s", chainID)
	}
	chain, err := s.chain(parent)
	if err != nil {
		return Info{}, fmt.Errorf("create layer %s: parent: %w", chainID, err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer-")
	if err != nil {
		return Info{}, fmt.Errorf("create layer %s: %w", chainID, err)
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(tmp)
		}
	}()
	fs := filepath.Join(tmp, "fs")
	if err := s.d.newLayer(ctx, tmp, chain); err != nil {
		return Info{}, fmt.Errorf("create layer %s: %w", chainID, err)
	}
	if err := fill(fs); err != nil {
		return Info{}, fmt.Errorf("create layer %s: %w", chainID, err)
	}
	size, err := diskUsage(ctx, fs)
	if err != nil {
		return Info{}, fmt.Errorf("create layer %s: %w", chainID, err)
	}
	info := Info{ChainID: chainID, Parent: parent, Size: size, Created: time.Now().UTC()}
	if err := writeJSON(filepath.Join(tmp, infoFile), layerInfo(info)); err != nil {
		return Info{}, fmt.Errorf("create layer %s: %w", chainID, err)
	}
	if err := archive.Sync(fs); err != nil {
		return Info{}, fmt.Errorf("create layer %s: %w", chainID, err)
	}

	unlock, err := s.lock(ctx)
	if err != nil {
		return Info{}, err
	}
	defer unlock()
	if parent != "" {
		if _, err := s.readLayer(parent); err != nil {
			return Info{}, fmt.Errorf("create layer %s: parent: %w", chainID, err)
		}
	}
	dst := s.layerDir(chainID)
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		return Info{}, errdefs.AlreadyExists("layer %s", chainID)
	}
	if err != nil {
		return Info{}, fmt.Errorf("create layer %s: publish: %w", chainID, err)
	}
	published = true
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return Info{}, fmt.Errorf("create layer %s: %w", chainID, err)
	}
	return info, nil
}

func (s *store) Stat(ctx context.Context, chainID digest.Digest) (Info, error) {
	if err := checkID(chainID, "chain ID"); err != nil {
		return Info{}, err
	}
	return s.readLayer(chainID)
}

func (s *store) Layers(ctx context.Context) ([]Info, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "layers"))
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	var out []Info
	for _, e := range entries {
		info, err := s.readLayer(digest.NewDigestFromEncoded(digest.SHA256, e.Name()))
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list layers: %w", err)
		}
		out = append(out, info)
	}
	return out, nil
}

func (s *store) actives() ([]Active, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "active"))
	if err != nil {
		return nil, fmt.Errorf("list active snapshots: %w", err)
	}
	// Discarded snapshots a crash left before their purge.
	if tmp, err := os.ReadDir(filepath.Join(s.root, "tmp")); err == nil {
		for _, e := range tmp {
			if strings.HasPrefix(e.Name(), discardedPrefix) {
				// Renamed in, its change time is when it was discarded.
				p := filepath.Join(s.root, "tmp", e.Name())
				var st unix.Stat_t
				if unix.Lstat(p, &st) == nil && time.Since(time.Unix(st.Ctim.Unix())) > discardedGrace {
					os.RemoveAll(p)
				}
			}
		}
	}
	var out []Active
	for _, e := range entries {
		var ai activeInfo
		err := readJSON(filepath.Join(s.root, "active", e.Name(), infoFile), &ai)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list active snapshots: %w", err)
		}
		out = append(out, Active(ai))
	}
	return out, nil
}

func (s *store) RemoveLayer(ctx context.Context, chainID digest.Digest) error {
	if err := checkID(chainID, "chain ID"); err != nil {
		return err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.readLayer(chainID); err != nil {
		return fmt.Errorf("remove layer: %w", err)
	}
	layers, err := s.Layers(ctx)
	if err != nil {
		return err
	}
	for _, l := range layers {
		if l.Parent == chainID {
			return errdefs.InUse("remove layer %s: layer %s is on top of it", chainID, l.ChainID)
		}
	}
	actives, err := s.actives()
	if err != nil {
		return err
	}
	for _, a := range actives {
		if a.Parent == chainID {
			return errdefs.InUse("remove layer %s: snapshot %q is on top of it", chainID, a.Key)
		}
	}
	if err := s.discard(s.layerDir(chainID)); err != nil {
		return fmt.Errorf("remove layer %s: %w", chainID, err)
	}
	return nil
}

func (s *store) Prepare(ctx context.Context, key string, parent digest.Digest) ([]Mount, error) {
	if key == "" {
		return nil, errdefs.InvalidArgument("prepare: empty snapshot key")
	}
	if parent != "" {
		if err := checkID(parent, "parent chain ID"); err != nil {
			return nil, err
		}
	}
	dst := s.activeDir(key)
	if _, err := os.Lstat(dst); err == nil {
		return nil, errdefs.AlreadyExists("snapshot %q", key)
	}
	chain, err := s.chain(parent)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: parent: %w", key, err)
	}
	tmp := s.takeSpare()
	spare := tmp != ""
	if !spare {
		if tmp, err = os.MkdirTemp(filepath.Join(s.root, "tmp"), "active-"); err != nil {
			return nil, fmt.Errorf("prepare %q: %w", key, err)
		}
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(tmp)
		}
	}()
	if !spare {
		if err := s.d.newActive(ctx, tmp, chain); err != nil {
			return nil, fmt.Errorf("prepare %q: %w", key, err)
		}
	}
	// tmp is private until it is renamed into active/: its info is
	// written in place (a spare has an empty one).
	ai := activeInfo{Key: key, Parent: parent, Created: time.Now().UTC()}
	if err := writeSynced(filepath.Join(tmp, infoFile), ai); err != nil {
		return nil, fmt.Errorf("prepare %q: %w", key, err)
	}

	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if chain, err = s.chain(parent); err != nil {
		return nil, fmt.Errorf("prepare %q: parent: %w", key, err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		return nil, errdefs.AlreadyExists("snapshot %q", key)
	}
	if err != nil {
		return nil, fmt.Errorf("prepare %q: publish: %w", key, err)
	}
	published = true
	return s.d.mounts(dst, chain), nil
}

func (s *store) readActive(key string) (activeInfo, error) {
	var ai activeInfo
	if err := readJSON(filepath.Join(s.activeDir(key), infoFile), &ai); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ai, errdefs.NotFound("snapshot %q", key)
		}
		return ai, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return ai, nil
}

func (s *store) Mounts(ctx context.Context, key string) ([]Mount, error) {
	ai, err := s.readActive(key)
	if err != nil {
		return nil, err
	}
	chain, err := s.chain(ai.Parent)
	if err != nil {
		return nil, fmt.Errorf("mounts of %q: %w", key, err)
	}
	return s.d.mounts(s.activeDir(key), chain), nil
}

func (s *store) Actives(ctx context.Context) ([]Active, error) { return s.actives() }

func (s *store) Remove(ctx context.Context, key string) error {
	purge, err := s.Discard(ctx, key)
	if err != nil {
		return err
	}
	return purge()
}

func (s *store) Discard(ctx context.Context, key string) (func() error, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := s.readActive(key); err != nil {
		return nil, fmt.Errorf("remove: %w", err)
	}
	aside, err := s.moveAside(s.activeDir(key))
	if err != nil {
		return nil, fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	return func() error {
		if s.recycle(aside) {
			return nil
		}
		if err := os.RemoveAll(aside); err != nil {
			return fmt.Errorf("remove snapshot %q: %w", key, err)
		}
		return nil
	}, nil
}

func (s *store) UpperDirOf(key string) string { return s.d.upperDir(s.activeDir(key)) }

func (s *store) UpperDir(ctx context.Context, key string) (string, error) {
	if _, err := s.readActive(key); err != nil {
		return "", err
	}
	return s.d.upperDir(s.activeDir(key)), nil
}

func (s *store) Usage(ctx context.Context, chainID digest.Digest) (int64, error) {
	if _, err := s.Stat(ctx, chainID); err != nil {
		return 0, err
	}
	return diskUsage(ctx, filepath.Join(s.layerDir(chainID), "fs"))
}

// overlayDriver keeps in each layer only what it adds and mounts overlayfs.
type overlayDriver struct{}

// overlayOptions are the options of every overlay mount: no inode index
// (so a layer can sit under any upper), no redirects or metacopy (so an
// upper directory is a plain diff; see archive.Diff).
var overlayOptions = []string{"index=off", "redirect_dir=off", "metacopy=off"}

func (overlayDriver) name() string                    { return "overlay" }
func (overlayDriver) whiteouts() archive.WhiteoutMode { return archive.WhiteoutOverlay }

func (overlayDriver) newLayer(ctx context.Context, dir string, chain []string) error {
	return os.Mkdir(filepath.Join(dir, "fs"), 0o755)
}

func (overlayDriver) newActive(ctx context.Context, dir string, chain []string) error {
	if err := os.Mkdir(filepath.Join(dir, "upper"), 0o755); err != nil {
		return err
	}
	return os.Mkdir(filepath.Join(dir, "work"), 0o700)
}

func (overlayDriver) mounts(dir string, chain []string) []Mount {
	upper := filepath.Join(dir, "upper")
	if len(chain) == 0 {
		return []Mount{{Type: "bind", Source: upper, Options: []string{"rbind", "rw"}}}
	}
	opts := append([]string{
		"lowerdir=" + strings.Join(chain, ":"),
		"upperdir=" + upper,
		"workdir=" + filepath.Join(dir, "work"),
	}, overlayOptions...)
	return []Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

func (overlayDriver) upperDir(dir string) string { return filepath.Join(dir, "upper") }

func (overlayDriver) spares() bool { return true }

// nativeDriver keeps full copies and bind mounts them.
type nativeDriver struct{}

func (nativeDriver) name() string                    { return "native" }
func (nativeDriver) whiteouts() archive.WhiteoutMode { return archive.WhiteoutDelete }

func (nativeDriver) newLayer(ctx context.Context, dir string, chain []string) error {
	return nativeCopy(ctx, dir, chain)
}

func (nativeDriver) newActive(ctx context.Context, dir string, chain []string) error {
	return nativeCopy(ctx, dir, chain)
}

func nativeCopy(ctx context.Context, dir string, chain []string) error {
	fs := filepath.Join(dir, "fs")
	if len(chain) == 0 {
		return os.Mkdir(fs, 0o755)
	}
	return copyTree(ctx, chain[0], fs)
}

func (nativeDriver) mounts(dir string, chain []string) []Mount {
	return []Mount{{Type: "bind", Source: filepath.Join(dir, "fs"), Options: []string{"rbind", "rw"}}}
}

func (nativeDriver) upperDir(dir string) string { return filepath.Join(dir, "fs") }

// A native writable snapshot is a copy of its parent: none is made ahead.
func (nativeDriver) spares() bool         { return false }
func (nativeDriver) pristine(string) bool { return false }
