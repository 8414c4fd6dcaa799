// Package lease owns leases: the record an operation in flight (a load, an
// import, later a pull or a build) keeps of the blobs and layers it has
// made but not yet made reachable from an image, so that a garbage
// collection running in another process at the same moment leaves them
// alone.
//
// A lease is a file named for its process; the resources are written to it
// before they are created. A lease whose process is gone (a crash, a kill -9)
// protects nothing: the next collection removes its file and what it held.
package lease

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/procfs"
)

// Resources are what leases protect.
type Resources struct {
	Blobs  []digest.Digest `json:"blobs,omitempty"`
	Layers []digest.Digest `json:"layers,omitempty"` // chain IDs
}

type record struct {
	PID       int    `json:"pid"`
	StartTime string `json:"start"` // /proc/<pid>/stat field 22, against PID reuse
	Resources
}

// Lease is held by one operation of this process.
type Lease struct {
	path string

	mu  sync.Mutex
	rec record
}

// New starts a lease in dir.
func New(dir string) (*Lease, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lease: %w", err)
	}
	pid := os.Getpid()
	start, err := procfs.StartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("create lease: %w", err)
	}
	f, err := os.CreateTemp(dir, strconv.Itoa(pid)+"-*.json")
	if err != nil {
		return nil, fmt.Errorf("create lease: %w", err)
	}
	f.Close()
	l := &Lease{path: f.Name(), rec: record{PID: pid, StartTime: start}}
	return l, l.write()
}

// AddBlobs protects blobs; call it before creating them.
func (l *Lease) AddBlobs(ds ...digest.Digest) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.Blobs = append(l.rec.Blobs, ds...)
	return l.write()
}

// AddLayers protects layer snapshots by chain ID; call it before creating them.
func (l *Lease) AddLayers(ds ...digest.Digest) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.Layers = append(l.rec.Layers, ds...)
	return l.write()
}

// write replaces the lease file. No fsync: after a crash the lease is void.
func (l *Lease) write() error {
	b, err := json.Marshal(l.rec)
	if err != nil {
		return err
	}
	tmp := l.path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write lease: %w", err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("write lease: %w", err)
	}
	return nil
}

// Release ends the lease.
func (l *Lease) Release() error {
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// Active returns what the live leases in dir protect, and removes the files
// of leases whose process is gone.
func Active(dir string) (Resources, error) {
	var out Resources
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return out, fmt.Errorf("read leases: %w", err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue // released while we listed
		}
		var r record
		if json.Unmarshal(b, &r) != nil {
			// A lease is written whole by rename; an unreadable one is
			// being created right now: keep it and move on.
			continue
		}
		if st, err := procfs.StartTime(r.PID); err != nil || st != r.StartTime {
			os.Remove(p)
			continue
		}
		out.Blobs = append(out.Blobs, r.Blobs...)
		out.Layers = append(out.Layers, r.Layers...)
	}
	return out, nil
}
