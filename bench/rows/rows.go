// Package rows lists the rows of berth's benchmark table. Each row is a job
// done by berth and by a peer in the same run (see bench/harness); to add a
// row, write a function returning a harness.Row and add it to All.
package rows

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/bench/harness"
	"github.com/berth-dev/berth/bench/imagegen"
	"github.com/berth-dev/berth/internal/testutil"
)

// Env is what rows need from the machine.
type Env struct {
	// Berth is the berth binary to measure.
	Berth string
	// BerthSkip, if not empty, says why berth cannot be measured (it is
	// not built yet, or lacks a command a row needs).
	BerthSkip string
	// DataDir holds the generated inputs (_out/bench).
	DataDir string
}

// All returns every row, generating their inputs in env.DataDir first (once:
// generated files are kept and reused while their parameters are unchanged).
func All(env Env) ([]harness.Row, error) {
	makers := []func(Env) (harness.Row, error){
		loadOneLayer,
		loadManyLayers,
		unpack,
		importRootfs,
		runTrueRow, density100, density1000,
		bridgeStartRow, requestRateRow, publishedBytesRow,
		buildRowCold, buildRowCached, buildRowChanged,
	}
	var rows []harness.Row
	for _, m := range makers {
		r, err := m(env)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

const mb = 1_000_000

var (
	oneLayer = imagegen.Spec{
		Ref:    "localhost/bench/one-layer:200mb",
		Seed:   1,
		Layers: []imagegen.Layer{{Files: 200, FileSize: 1 * mb}},
	}
	manyLayers = imagegen.Spec{
		Ref:    "localhost/bench/many-layers:20x5mb",
		Seed:   2,
		Layers: repeat(imagegen.Layer{Files: 5, FileSize: 1 * mb}, 20),
	}
)

func repeat(l imagegen.Layer, n int) []imagegen.Layer {
	ls := make([]imagegen.Layer, n)
	for i := range ls {
		ls[i] = l
	}
	return ls
}

const loadNote = "`load -i` of one docker-archive file (random, incompressible content) into " +
	"runnable storage (layers unpacked); every run starts from a fresh, empty, initialised store " +
	"(berth: --root/--runroot; podman: --root/--runroot/--tmpdir, overlay driver)"

func loadOneLayer(env Env) (harness.Row, error) {
	return loadRow(env, "load 200 MB, 1 layer", "one-layer-200mb.tar", oneLayer)
}

func loadManyLayers(env Env) (harness.Row, error) {
	return loadRow(env, "load 20 x 5 MB layers", "many-layers-20x5mb.tar", manyLayers)
}

func loadRow(env Env, name, file string, spec imagegen.Spec) (harness.Row, error) {
	path := filepath.Join(env.DataDir, file)
	if err := imagegen.WriteDockerArchive(path, spec); err != nil {
		return harness.Row{}, fmt.Errorf("row %q: %w", name, err)
	}
	return harness.Row{
		Name: name,
		Note: loadNote,
		Berth: berthSide(env, "berth load", func(b berthStore) harness.Timed {
			return b.exec("load", "-i", path)
		}),
		Peers: []harness.Side{podmanSide("podman load", func(p *testutil.Podman) harness.Timed {
			return harness.Exec(p.Env, p.Bin, p.Args("load", "-q", "-i", path)...)
		})},
	}, nil
}

// unpack measures berth's layer unpacking itself, in process, against GNU
// tar extracting the same uncompressed layer.
func unpack(env Env) (harness.Row, error) {
	const name = "unpack 200 MB layer"
	path := filepath.Join(env.DataDir, "rootfs-200mb.tar")
	if err := imagegen.WriteRootfs(path, oneLayer); err != nil {
		return harness.Row{}, fmt.Errorf("row %q: %w", name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return harness.Row{}, err
	}
	return harness.Row{
		Name:  name,
		Note:  "one uncompressed layer tar from the page cache into an empty directory, no fsync; berth: archive.Apply in process; GNU tar: tar -xf (as root: owners and modes kept)",
		Bytes: fi.Size(),
		Berth: harness.Side{
			Name: "archive.Apply",
			Setup: func(_ context.Context, dir string) (harness.Timed, error) {
				return func(ctx context.Context) error {
					f, err := os.Open(path)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = archive.Apply(ctx, dir, f, archive.ApplyOptions{})
					return err
				}, nil
			},
		},
		Peers: []harness.Side{{
			Name: "tar -xf",
			Setup: func(_ context.Context, dir string) (harness.Timed, error) {
				return harness.Exec(nil, "tar", "-xf", path, "-C", dir), nil
			},
		}},
	}, nil
}

// importRootfs measures `import` of a rootfs tarball: reading it, storing it
// as a layer and unpacking it.
func importRootfs(env Env) (harness.Row, error) {
	const name = "import 200 MB rootfs"
	path := filepath.Join(env.DataDir, "rootfs-200mb.tar")
	if err := imagegen.WriteRootfs(path, oneLayer); err != nil {
		return harness.Row{}, fmt.Errorf("row %q: %w", name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return harness.Row{}, err
	}
	const ref = "localhost/bench/imported:latest"
	return harness.Row{
		Name:  name,
		Note:  "`import FILE` of an uncompressed rootfs tarball into a fresh, empty, initialised store; MB/s of tarball",
		Bytes: fi.Size(),
		Berth: berthSide(env, "berth import", func(b berthStore) harness.Timed {
			return b.exec("import", path, ref)
		}),
		Peers: []harness.Side{podmanSide("podman import", func(p *testutil.Podman) harness.Timed {
			return harness.Exec(p.Env, p.Bin, p.Args("import", "-q", path, ref)...)
		})},
	}, nil
}

// berthStore is a berth data root and run root made for one run.
type berthStore struct {
	bin, root, runroot string
}

func (b berthStore) args(args ...string) []string {
	return append([]string{"--root", b.root, "--runroot", b.runroot}, args...)
}

func (b berthStore) exec(args ...string) harness.Timed {
	return harness.Exec(nil, b.bin, b.args(args...)...)
}

// berthSide returns berth's side of a row: each run gets a fresh store in its
// directory, initialised (by `berth images`, untimed) before work is timed.
func berthSide(env Env, name string, work func(berthStore) harness.Timed) harness.Side {
	return harness.Side{
		Name: name,
		Skip: env.BerthSkip,
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			b := berthStore{bin: env.Berth, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
			if out, err := exec.CommandContext(ctx, b.bin, b.args("images")...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("berth images: %w\n%s", err, out)
			}
			return work(b), nil
		},
	}
}

// podmanSide returns a podman side of a row: each run gets fresh podman
// storage in its directory, initialised (by `podman images`, untimed) before
// work is timed.
func podmanSide(name string, work func(*testutil.Podman) harness.Timed) harness.Side {
	s := harness.Side{
		Name: name,
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			p, err := testutil.SetupPodman(dir, "runc")
			if err != nil {
				return nil, err
			}
			cmd := p.Command(ctx, "images")
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("podman images: %w\n%s", err, out)
			}
			return work(p), nil
		},
	}
	if err := testutil.PodmanAvailable(); err != nil {
		s.Skip = err.Error()
	}
	return s
}
