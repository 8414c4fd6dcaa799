package runtime

import (
	"sync"

	rcgroups "github.com/berth-dev/berth/runtime/cgroups"
)

// Cache is what a process that creates many containers keeps from one to
// the next — berth's monitor: the seccomp filters it compiled, by the
// profile they were compiled from (its JSON in the bundle's config.json:
// almost every container has the default one, and decoding and compiling
// it takes about half a millisecond on the path of every start), and
// where the cgroup hierarchies are mounted. A nil cache keeps nothing.
type Cache struct {
	mu sync.Mutex
	m  map[string]compiledFilter
	// compiles counts the filters compiled for want of one in the cache.
	compiles int

	hierarchies rcgroups.Hierarchies
}

// compiledFilter is a seccomp program and the flags to load it with.
type compiledFilter struct {
	filter []byte
	flags  uint
}

// maxCachedFilters bounds the cache: profiles beyond it are compiled on
// every use, never kept.
const maxCachedFilters = 16

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{m: map[string]compiledFilter{}}
}

// cgroups returns where the cgroup hierarchies are, nil for a nil cache.
func (c *Cache) cgroups() *rcgroups.Hierarchies {
	if c == nil {
		return nil
	}
	return &c.hierarchies
}

func (c *Cache) get(profile []byte) (compiledFilter, bool) {
	if c == nil {
		return compiledFilter{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[string(profile)]
	return f, ok
}

func (c *Cache) put(profile []byte, f compiledFilter) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compiles++
	if len(c.m) < maxCachedFilters {
		c.m[string(profile)] = f
	}
}
