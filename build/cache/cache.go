// Package cache owns the build cache: the result of each build step, kept
// by the step's key, and the directories of RUN --mount=type=cache. It is
// apart from package build so that the engine's garbage collection and
// system commands can read it without the Dockerfile machinery.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/build/backend"
)

// Cache keeps the result of each build step by its key, as one small JSON
// file per step under its directory (records/), plus the directories of
// RUN --mount=type=cache (mounts/). A record holds the layers after the
// step and when it ran, so a fully cached build stores the very same
// image again. The layers a record names stay in the store while
// the record exists: the engine's garbage collection reads Roots.
type Cache struct {
	dir string
}

// Record is the result of one step that may make a layer: the stack of
// layers after it. (The configuration is not kept: it follows from the
// instructions, which the keys cover.)
type Record struct {
	Layers []backend.Layer `json:"layers"`
	// Created is when the step ran.
	Created time.Time `json:"created"`
}

// Open opens (creating if needed) the cache in dir.
func Open(dir string) (*Cache, error) {
	for _, d := range []string{"records", "mounts"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("open build cache: %w", err)
		}
	}
	return &Cache{dir: dir}, nil
}

func (c *Cache) recordPath(key digest.Digest) string {
	return filepath.Join(c.dir, "records", key.Encoded()+".json")
}

// Get returns the record of key, or nil if there is none.
func (c *Cache) Get(key digest.Digest) *Record {
	b, err := os.ReadFile(c.recordPath(key))
	if err != nil {
		return nil
	}
	var r Record
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}

// Put records the state after the step key, atomically.
func (c *Cache) Put(key digest.Digest, r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write build cache record: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "records"), ".tmp-")
	if err != nil {
		return fmt.Errorf("write build cache record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write build cache record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write build cache record: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.recordPath(key)); err != nil {
		return fmt.Errorf("write build cache record: %w", err)
	}
	return nil
}

// MountDir returns the directory of the cache mount id, creating it.
func (c *Cache) MountDir(id string) (string, error) {
	d := filepath.Join(c.dir, "mounts", digest.FromString(id).Encoded())
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("cache mount %s: %w", id, err)
	}
	return d, nil
}

// Roots lists the layers every record needs, each as the stack of diff
// IDs up to it (so that the caller can derive chain IDs) and its blob.
func (c *Cache) Roots(ctx context.Context) ([][]backend.Layer, error) {
	var out [][]backend.Layer
	err := c.walk(func(_ string, r *Record) error {
		out = append(out, r.Layers)
		return ctx.Err()
	})
	return out, err
}

func (c *Cache) walk(fn func(path string, r *Record) error) error {
	ents, err := os.ReadDir(filepath.Join(c.dir, "records"))
	if err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(c.dir, "records", e.Name())
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("build cache: %w", err)
		}
		var r Record
		if json.Unmarshal(b, &r) != nil {
			continue
		}
		if err := fn(p, &r); err != nil {
			return err
		}
	}
	return nil
}

// Usage says how many records and cache mounts the cache holds and the
// bytes the cache mounts use.
func (c *Cache) Usage() (records, mounts int, mountBytes int64, err error) {
	err = c.walk(func(string, *Record) error { records++; return nil })
	if err != nil {
		return 0, 0, 0, err
	}
	ents, err := os.ReadDir(filepath.Join(c.dir, "mounts"))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("build cache: %w", err)
	}
	for _, e := range ents {
		mounts++
		filepath.WalkDir(filepath.Join(c.dir, "mounts", e.Name()), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					mountBytes += fi.Size()
				}
			}
			return nil
		})
	}
	return records, mounts, mountBytes, nil
}

// Prune removes every record and cache mount; the layers only they kept
// go at the engine's next collection. It returns how many records it
// removed.
func (c *Cache) Prune(ctx context.Context) (int, error) {
	n := 0
	err := c.walk(func(p string, _ *Record) error {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("build cache: %w", err)
		}
		n++
		return ctx.Err()
	})
	if err != nil {
		return n, err
	}
	mounts := filepath.Join(c.dir, "mounts")
	ents, err := os.ReadDir(mounts)
	if err != nil {
		return n, fmt.Errorf("build cache: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(mounts, e.Name())); err != nil {
			return n, fmt.Errorf("build cache: %w", err)
		}
	}
	return n, nil
}
