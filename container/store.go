package container

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
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Store keeps container records under a directory:
//
//	<dir>/<id>/container.json   the record, replaced atomically
//	<dir>/<id>/lock             taken for each read-modify-write
//	<dir>/names/<name>          holds the ID; created with O_EXCL
type Store struct {
	dir string
}

// OpenStore opens (creating) the store in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "names"), 0o700); err != nil {
		return nil, fmt.Errorf("open container store: %w", err)
	}
	// Each container's directory in a block group of its own choosing.
	if err := fsutil.SpreadSubdirs(dir); err != nil {
		return nil, fmt.Errorf("open container store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the directory of a container's files.
func (s *Store) Dir(id string) string { return filepath.Join(s.dir, id) }

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// NewID returns a fresh container ID: 64 hex digits.
func NewID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Create stores a new container, reserving its name. The name must be free
// (errdefs.ErrConflict otherwise, in Docker's words).
func (s *Store) Create(ctx context.Context, c *Container) error {
	name := c.DisplayName()
	if !validName.MatchString(name) {
		return errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	if err := os.Mkdir(s.Dir(c.ID), 0o700); err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	// The record and the name are written and synced side by side (each
	// waits on the disk, not on the other), then made visible in order:
	// the record exists before its name does, so a name always has an
	// owner to check.
	type staged struct {
		s   *fsutil.Staged
		err error
	}
	namec := make(chan staged, 1)
	go func() {
		st, err := fsutil.Stage(filepath.Join(s.dir, "names", name), []byte(c.ID), 0o600)
		// The lock file of later updates is made now, off their path:
		// the first is the monitor's, as the container starts.
		if f, err := os.OpenFile(filepath.Join(s.Dir(c.ID), "lock"), os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
			f.Close()
		}
		namec <- staged{st, err}
	}()
	rec, err := fsutil.Stage(filepath.Join(s.Dir(c.ID), "container.json"), b, 0o600)
	if err == nil {
		err = rec.Commit()
	}
	nm := <-namec
	if err == nil {
		err = nm.err
	}
	if err != nil {
		if nm.s != nil {
			nm.s.Abort()
		}
		os.RemoveAll(s.Dir(c.ID))
		return fmt.Errorf("create container: %w", err)
	}
	if err := s.reserveName(name, c.ID, nm.s); err != nil {
		os.RemoveAll(s.Dir(c.ID))
		return err
	}
	return nil
}

// reserveName gives name to id, committing staged (the name's file, made
// by fsutil.Stage) or, if nil, writing it. Name changes are serialized by
// one lock over the index, held only for the check and the write; a name
// whose owner's record is gone (a crash between the two) is free again.
// staged is committed or aborted.
func (s *Store) reserveName(name, id string, staged *fsutil.Staged) (err error) {
	defer func() {
		if err != nil && staged != nil {
			staged.Abort()
		}
	}()
	l, err := fsutil.LockFile(filepath.Join(s.dir, "names", ".lock"))
	if err != nil {
		return err
	}
	defer l.Unlock()
	p := filepath.Join(s.dir, "names", name)
	if owner, err := os.ReadFile(p); err == nil && string(owner) != id {
		if _, err := os.Stat(s.Dir(string(owner))); err == nil {
			return errdefs.Conflict(`Conflict. The container name "/%s" is already in use by container "%s". You have to remove (or rename) that container to be able to reuse that name.`, name, owner)
		}
	}
	if staged != nil {
		err = staged.Commit()
		staged = nil
	} else {
		err = fsutil.WriteFileAtomic(p, []byte(id), 0o600)
	}
	if err != nil {
		return fmt.Errorf("reserve name %s: %w", name, err)
	}
	return nil
}

func (s *Store) releaseName(name, id string) {
	l, err := fsutil.LockFile(filepath.Join(s.dir, "names", ".lock"))
	if err != nil {
		return
	}
	defer l.Unlock()
	p := filepath.Join(s.dir, "names", name)
	if owner, err := os.ReadFile(p); err == nil && string(owner) == id {
		os.Remove(p)
	}
}

// write replaces the record, synced to disk when durable. A new record is
// durable, and so are changes of what the container is (its name, its
// networks); changes of its state (running, exited, paused, restarting)
// are not: no crash of the machine leaves them true anyway, and the next
// command reconciles a record that says running with the processes that
// are (none). Either way a reader sees the old record or the new.
func (s *Store) write(c *Container, durable bool) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("write container %s: %w", c.ID, err)
	}
	write := fsutil.WriteFileVolatile
	if durable {
		write = fsutil.WriteFileAtomic
	}
	if err := write(filepath.Join(s.Dir(c.ID), "container.json"), b, 0o600); err != nil {
		return fmt.Errorf("write container %s: %w", c.ID, err)
	}
	return nil
}

// Get reads a container by full ID.
func (s *Store) Get(ctx context.Context, id string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir(id), "container.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("No such container: %s", id)
	} else if err != nil {
		return nil, fmt.Errorf("read container %s: %w", id, err)
	}
	var c Container
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read container %s: %w", id, err)
	}
	return &c, nil
}

// Resolve finds a container by name, full ID or unique ID prefix, as Docker
// does, and returns its ID.
func (s *Store) Resolve(ctx context.Context, ref string) (string, error) {
	name := strings.TrimPrefix(ref, "/")
	if name == "" {
		return "", errdefs.InvalidArgument("container name or ID is empty")
	}
	if validName.MatchString(name) {
		if b, err := os.ReadFile(filepath.Join(s.dir, "names", name)); err == nil {
			if _, err := os.Stat(s.Dir(string(b))); err == nil {
				return string(b), nil
			}
		}
	}
	if !isHex(ref) {
		return "", errdefs.NotFound("No such container: %s", ref)
	}
	if len(ref) == 64 {
		if _, err := os.Stat(s.Dir(ref)); err == nil {
			return ref, nil // a full ID: no need to list them all
		}
	}
	ids, err := s.IDs(ctx)
	if err != nil {
		return "", err
	}
	var found string
	for _, id := range ids {
		if strings.HasPrefix(id, ref) {
			if found != "" {
				return "", errdefs.InvalidArgument("multiple IDs found with provided prefix: %s", ref)
			}
			found = id
		}
	}
	if found == "" {
		return "", errdefs.NotFound("No such container: %s", ref)
	}
	return found, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// IDs lists the IDs of every container.
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if len(e.Name()) == 64 && isHex(e.Name()) {
			ids = append(ids, e.Name())
		} else if strings.HasPrefix(e.Name(), removedPrefix) {
			os.RemoveAll(filepath.Join(s.dir, e.Name())) // left by a crash in Delete
		}
	}
	return ids, nil
}

// List reads every container, newest first.
func (s *Store) List(ctx context.Context) ([]*Container, error) {
	ids, err := s.IDs(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, id := range ids {
		c, err := s.Get(ctx, id)
		if errdefs.IsNotFound(err) {
			continue // removed while we listed
		} else if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Update runs fn on the current record under the container's lock and
// writes what it leaves, durably. fn must be quick and never wait on a user
// or a process. An error from fn writes nothing.
func (s *Store) Update(ctx context.Context, id string, fn func(c *Container) error) (*Container, error) {
	return s.update(ctx, id, true, fn)
}

// UpdateState is Update for changes of the container's state alone, which
// need not survive a crash of the machine (see write).
func (s *Store) UpdateState(ctx context.Context, id string, fn func(c *Container) error) (*Container, error) {
	return s.update(ctx, id, false, fn)
}

func (s *Store) update(ctx context.Context, id string, durable bool, fn func(c *Container) error) (*Container, error) {
	l, err := s.lock(id)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := fn(c); err != nil {
		return nil, err
	}
	// An --rm container is not meant to outlive its process: none of its
	// changes need survive a crash of the machine.
	if err := s.write(c, durable && !c.HostConfig.AutoRemove); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Store) lock(id string) (*fsutil.Lock, error) {
	if _, err := os.Stat(s.Dir(id)); err != nil {
		return nil, errdefs.NotFound("No such container: %s", id)
	}
	l, err := fsutil.LockFile(filepath.Join(s.Dir(id), "lock"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("No such container: %s", id) // removed meanwhile
	}
	return l, err
}

// Rename gives a container a new name.
func (s *Store) Rename(ctx context.Context, id, newName string) error {
	if !validName.MatchString(newName) {
		return errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", newName)
	}
	if err := s.reserveName(newName, id, nil); err != nil {
		return err
	}
	var old string
	_, err := s.Update(ctx, id, func(c *Container) error {
		old = c.DisplayName()
		c.Name = "/" + newName
		return nil
	})
	if err != nil {
		s.releaseName(newName, id)
		return err
	}
	s.releaseName(old, id)
	return nil
}

// Delete removes the record and frees its name. The caller has released
// everything else the container held.
func (s *Store) Delete(ctx context.Context, id string) error {
	purge, err := s.Discard(ctx, id)
	if err != nil {
		return err
	}
	return purge()
}

// Discard is Delete in two steps: the record and its name are gone when
// Discard returns, its files once purge has run (IDs deletes what a crash
// in between leaves).
func (s *Store) Discard(ctx context.Context, id string) (purge func() error, err error) {
	l, err := s.lock(id)
	if err != nil {
		return nil, err
	}
	c, err := s.Get(ctx, id)
	if err != nil {
		l.Unlock()
		return nil, err
	}
	// The record goes first, moved aside under its lock in one rename: a
	// writer that waits for the lock, or opens it a moment later, finds no
	// record rather than making its directory again. A crash after this
	// leaves a name whose owner is gone, which reserveName reclaims, and a
	// directory aside, which IDs clears.
	aside := filepath.Join(s.dir, removedPrefix+id)
	err = os.Rename(s.Dir(id), aside)
	l.Unlock()
	if err != nil {
		return nil, fmt.Errorf("remove container %s: %w", id, err)
	}
	s.releaseName(c.DisplayName(), id)
	return func() error {
		if err := os.RemoveAll(aside); err != nil {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
		return nil
	}, nil
}

// removedPrefix names a removed container's directory on its way out.
const removedPrefix = ".removed-"

// NameInUse reports whether a name is taken.
func (s *Store) NameInUse(name string) bool {
	b, err := os.ReadFile(filepath.Join(s.dir, "names", name))
	if err != nil {
		return false
	}
	_, err = os.Stat(s.Dir(string(b)))
	return err == nil
}
