// Package engine is berth as a library: every operation a user can ask for
// (import, load, save, tag, remove, prune, create, run, stop, exec, ...) is
// one method of Engine. The CLI, the Docker Engine API and the CRI are thin
// translations onto it. The operations that need a registry client or the
// Dockerfile frontend are functions of the packages that bring those in,
// on an Engine: engine/transfer (Pull, Push) and engine/builder (Build), so
// that a program that only runs containers does not load them.
//
// An Engine holds no state of its own beyond open handles: the state on disk
// under the data root is the truth, shared safely by every berth process.
package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/network"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/volume"
)

// Options configure an Engine.
type Options struct {
	// Root is the data root (default /var/lib/berth).
	Root string
	// RunRoot holds the state that does not survive a reboot (default /run/berth).
	RunRoot string
	// StorageDriver is "overlay", "native", or "" to pick overlay when the
	// kernel supports it.
	StorageDriver string
	// Executable is the berth binary that runs the container monitor
	// (`berth _monitor`); the running binary when empty.
	Executable string
}

// Engine is berth's engine over one data root.
type Engine struct {
	root, runRoot string

	content    *content.Store
	images     *image.Store
	snaps      snapshot.Snapshotter
	containers *container.Store
	volumes    *volume.Store

	// exe is the berth binary, re-executed as the container monitor.
	exe string
	// sandboxes are network namespaces made ahead for bridge starts: the
	// monitor's (nil in any other process, which makes its namespace
	// when it needs one). They are the process's kernel objects and die
	// with it.
	sandboxes *network.SandboxPool
	// endpoints caches the network's endpoint records for the monitor
	// (nil elsewhere: a command reads them once).
	endpoints *network.EndpointCache
	// mountTemplate is where the monitor's containers' mount namespaces
	// are copied from (nil elsewhere, or where it could not be made).
	mountTemplate *runtime.MountTemplate
	// runtimeCache is what the monitor's runtime keeps from one container
	// to the next (nil elsewhere: a command starts one container at most).
	runtimeCache *runtime.Cache

	// runs are what this process did, creating a container, for the
	// start that follows (CreateOptions.MountRoot), by container ID.
	mu   sync.Mutex
	runs map[string]runStart
}

// runStart is what a run's create did for its start: the root it mounted,
// and the start it asked the monitor to prepare (nil if none).
type runStart struct {
	mounted bool
	prep    *preparedStart
}

// New opens the engine's stores under opts.Root, creating them if needed.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Root == "" || opts.RunRoot == "" {
		return nil, fmt.Errorf("open engine: root and runroot must be set")
	}
	if err := os.MkdirAll(opts.Root, 0o711); err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	if err := prepareRunRoot(opts.RunRoot); err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	cs, err := content.Open(filepath.Join(opts.Root, "content"))
	if err != nil {
		return nil, err
	}
	is, err := image.Open(filepath.Join(opts.Root, "image"), filepath.Join(cs.Root(), "index.json"))
	if err != nil {
		return nil, err
	}
	sn, err := snapshot.New(filepath.Join(opts.Root, "snapshots"), opts.StorageDriver)
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	// The lock and lease files exist from the start, so that the first
	// collection changes nothing but what it collects.
	if err := os.MkdirAll(filepath.Join(opts.Root, "leases"), 0o700); err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	if f, err := os.OpenFile(filepath.Join(opts.Root, "gc.lock"), os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
		f.Close()
	}
	ct, err := container.OpenStore(filepath.Join(opts.Root, "containers"))
	if err != nil {
		return nil, err
	}
	vs, err := volume.OpenStore(filepath.Join(opts.Root, "volumes"))
	if err != nil {
		return nil, err
	}
	exe := opts.Executable
	if exe == "" {
		exe = "/proc/self/exe"
	}
	return &Engine{root: opts.Root, runRoot: opts.RunRoot, content: cs, images: is, snaps: sn, containers: ct, volumes: vs, exe: exe}, nil
}

// Root is the data root.
func (e *Engine) Root() string { return e.root }

func (e *Engine) leaseDir() string { return filepath.Join(e.root, "leases") }
func (e *Engine) gcLock() string   { return filepath.Join(e.root, "gc.lock") }
