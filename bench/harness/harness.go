// Package harness runs berth's benchmarks: each row of the table is one job
// done by berth and by one or more peers (podman, skopeo, GNU tar, ...),
// measured side by side in the same run, and reported as medians and the
// ratio berth/peer.
//
// Runs are interleaved (berth, peer, berth, peer, ...) so that a noisy
// neighbour slows both sides alike, and every run starts from a fresh
// directory: a Side's Setup prepares it, untimed, and returns the one thing
// to time. The file system is synced before each timed run, so that one
// run's dirty pages are not written back during the next.
//
// The harness never judges a result: it prints numbers, and nothing anywhere
// asserts a wall-clock threshold.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// A Row is one line of the table: the same job done by berth and by peers.
type Row struct {
	// Name is what the row measures, as it appears in the table.
	Name string
	// Note says, for the legend under the table, how the job is set up
	// (what each run starts from) so that readers can judge fairness.
	Note string
	// Bytes, if positive, is the amount of data one run processes; the
	// table then shows throughput (MB/s) beside each median.
	Bytes int64
	// Berth is berth's side of the row.
	Berth Side
	// Peers are the other tools doing the same job; each gets its own
	// ratio. A row needs at least one.
	Peers []Side
	// Runs, if positive, replaces Config.Runs for this row and drops the
	// warm-up run: for rows too costly to run many times (density).
	Runs int
	// OptIn rows run only when selected by name (berthbench -rows).
	OptIn bool
	// Report, if not nil, gives lines for the legend once the row has run:
	// what it measured besides time.
	Report func() []string
}

// A Side is one tool's way of doing a row's job.
type Side struct {
	// Name names the tool in the table ("berth", "podman load").
	Name string
	// Skip, if not empty, says why this side cannot run here; the row
	// prints the reason instead of a number.
	Skip string
	// Setup prepares a run in dir, a fresh empty directory with a short
	// path, without being timed, and returns the work to time. Whatever it
	// leaves in dir, mounts included, is removed after the run.
	Setup func(ctx context.Context, dir string) (Timed, error)
	// Teardown, if not nil, runs untimed after the work, before dir is
	// removed: to measure what the work left running, and to stop it.
	Teardown func(ctx context.Context, dir string) error
}

// Timed is the work one run times.
type Timed func(ctx context.Context) error

// Exec returns a Timed that runs a command and, if it fails, reports its
// output. env, if not nil, replaces the environment.
func Exec(env []string, name string, args ...string) Timed {
	return func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
}

// Config says how rows are run.
type Config struct {
	// Runs is how many timed runs each side gets (after one untimed warm-up
	// run); the table reports their median.
	Runs int
	// TempDir is where each run's directory is made. It must be short:
	// podman refuses run roots longer than 50 characters.
	TempDir string
	// Log, if not nil, receives one line per finished run.
	Log func(format string, args ...any)
}

// Result is what running a row gave.
type Result struct {
	Row Row
	// Berth and Peers hold each side's measurements, in the order of the
	// row's sides.
	Berth Measure
	Peers []Measure
}

// Measure is one side's timed runs.
type Measure struct {
	Side Side
	// Times are the durations of the timed runs.
	Times []time.Duration
	// Err is why the side has no measurement (its Skip reason, or the
	// error that stopped its runs).
	Err error
}

// Median returns the median of the timed runs, or 0 if there are none.
func (m Measure) Median() time.Duration {
	if len(m.Times) == 0 {
		return 0
	}
	ts := slices.Clone(m.Times)
	slices.Sort(ts)
	n := len(ts)
	if n%2 == 1 {
		return ts[n/2]
	}
	return (ts[n/2-1] + ts[n/2]) / 2
}

// Run measures every side of row cfg.Runs times, interleaving the sides, and
// returns the measurements. A side that fails stops its own runs only.
func Run(ctx context.Context, cfg Config, row Row) Result {
	sides := append([]Side{row.Berth}, row.Peers...)
	ms := make([]Measure, len(sides))
	for i, s := range sides {
		ms[i].Side = s
		if s.Skip != "" {
			ms[i].Err = errors.New(s.Skip)
		}
	}
	// Run 0 is the warm-up: it fills caches (the input file in the page
	// cache, the binaries) and is not counted.
	first, runs := 0, cfg.Runs
	if row.Runs > 0 {
		first, runs = 1, row.Runs
	}
	for run := first; run <= runs; run++ {
		for i := range sides {
			// Alternate the order, so that no side always runs right
			// after the same other side.
			if run%2 == 1 {
				i = len(sides) - 1 - i
			}
			m := &ms[i]
			if m.Err != nil || ctx.Err() != nil {
				continue
			}
			d, err := once(ctx, cfg.TempDir, m.Side)
			if err != nil {
				m.Err = fmt.Errorf("run %d: %w", run, err)
				continue
			}
			if run > 0 {
				m.Times = append(m.Times, d)
			}
			if cfg.Log != nil {
				cfg.Log("%s: %s: run %d: %v", row.Name, m.Side.Name, run, d.Round(time.Millisecond))
			}
		}
	}
	return Result{Row: row, Berth: ms[0], Peers: ms[1:]}
}

// once prepares a fresh directory for side, times its work and removes the
// directory.
func once(ctx context.Context, tempDir string, side Side) (d time.Duration, err error) {
	dir, err := os.MkdirTemp(tempDir, "bb-")
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := removeRunDir(dir); cerr != nil && err == nil {
			err = cerr
		}
	}()
	work, err := side.Setup(ctx, dir)
	if err != nil {
		return 0, fmt.Errorf("setup: %w", err)
	}
	if side.Teardown != nil {
		defer func() {
			if terr := side.Teardown(context.WithoutCancel(ctx), dir); terr != nil && err == nil {
				err = fmt.Errorf("teardown: %w", terr)
			}
		}()
	}
	syscall.Sync()
	start := time.Now()
	err = work(ctx)
	d = time.Since(start)
	return d, err
}

// removeRunDir unmounts and removes a run's directory. A peer may still be
// cleaning up in the background when its command returns (podman's conmon
// runs `podman container cleanup` after the CLI exits), so a directory that
// is not empty yet is tried again, a bounded number of times: this is
// teardown, never timed.
func removeRunDir(dir string) error {
	var err error
	for range 50 {
		if err = testutil.UnmountAll(dir); err != nil {
			return err
		}
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("removing %s: %w", dir, err)
}
