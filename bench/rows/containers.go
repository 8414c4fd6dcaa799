package rows

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/bench/harness"
	"github.com/berth-dev/berth/internal/testutil"
)

// The container lifecycle's rows: run latency against the OCI runtimes
// and podman, and density (opt-in: -rows density).

func runTrueRow(env Env) (harness.Row, error) {
	bb, err := busyboxInputs(env)
	return runTrue(env, bb), err
}

func density100(env Env) (harness.Row, error) {
	bb, err := busyboxInputs(env)
	return density(env, bb, 100, true, nil), err
}

func density1000(env Env) (harness.Row, error) {
	bb, err := busyboxInputs(env)
	// berth's default bridge is a /24: 253 containers at most on it.
	return density(env, bb, 1000, false, []string{"--network", "none"}), err
}

// busybox is where the busybox inputs are: the rootfs tarball (made by
// hack/mkimages.sh) and an OCI bundle made from it for the runtimes.
type busybox struct {
	tar, bundle string
}

var busyboxOnce struct {
	sync.Once
	bb  busybox
	err error
}

// busyboxInputs makes the busybox inputs once.
func busyboxInputs(env Env) (busybox, error) {
	busyboxOnce.Do(func() { busyboxOnce.bb, busyboxOnce.err = makeBusyboxInputs(env) })
	return busyboxOnce.bb, busyboxOnce.err
}

func makeBusyboxInputs(env Env) (busybox, error) {
	root, err := filepath.Abs(filepath.Join(env.DataDir, "..", ".."))
	if err != nil {
		return busybox{}, err
	}
	out := filepath.Join(root, "_out", "images")
	if b, err := exec.Command(filepath.Join(root, "hack", "mkimages.sh"), out).CombinedOutput(); err != nil {
		return busybox{}, fmt.Errorf("hack/mkimages.sh: %w\n%s", err, b)
	}
	bb := busybox{tar: filepath.Join(out, "busybox-rootfs.tar"), bundle: filepath.Join(env.DataDir, "busybox-bundle")}
	return bb, makeBundle(bb)
}

// makeBundle unpacks the busybox rootfs into an OCI bundle whose config is
// runc's default spec running /bin/true (as bench/runtime/bench.sh does).
func makeBundle(bb busybox) error {
	rootfs := filepath.Join(bb.bundle, "rootfs")
	if _, err := os.Stat(filepath.Join(rootfs, "bin", "busybox")); err != nil {
		os.RemoveAll(bb.bundle)
		if err := os.MkdirAll(rootfs, 0o755); err != nil {
			return err
		}
		if out, err := exec.Command("tar", "-xf", bb.tar, "-C", rootfs).CombinedOutput(); err != nil {
			return fmt.Errorf("unpacking busybox: %w\n%s", err, out)
		}
	}
	cfg := filepath.Join(bb.bundle, "config.json")
	os.Remove(cfg)
	cmd := exec.Command("runc", "spec")
	cmd.Dir = bb.bundle
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %w\n%s", err, out)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	proc := spec["process"].(map[string]any)
	proc["args"], proc["terminal"] = []string{"/bin/true"}, false
	b, err = json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(cfg, b, 0o644)
}

const runNote = "one container running /bin/true from busybox, removed after; berth: `run --rm busybox true` " +
	"in a store with busybox imported and its monitor already running (a first container ran, untimed), " +
	"on berth's default network today (a bridge: a network namespace attached to berth's bridge, veth pair, address); " +
	"crun/runc: `run` of a prepared OCI bundle (runc's default spec, no network setup beyond a new namespace); " +
	"podman (runc, cgroupfs): `run --rm` with its default network (bridge) and with --network none; " +
	"docker: Debian's dockerd (the bench's own, see the build rows), `docker run --rm` on its default bridge. " +
	"Run with -runs 20 for the published table"

// runTrue is berth run --rm against the OCI runtimes alone and podman.
func runTrue(env Env, bb busybox) harness.Row {
	berth := berthSide(env, "berth run --rm", func(b berthStore) harness.Timed {
		return b.exec("run", "--rm", "busybox", "true")
	})
	setup := berth.Setup
	berth.Setup = func(ctx context.Context, dir string) (harness.Timed, error) {
		work, err := setup(ctx, dir)
		if err != nil {
			return nil, err
		}
		b := berthStore{bin: env.Berth, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
		for _, args := range [][]string{{"import", "-c", `CMD ["sh"]`, bb.tar, "busybox"}, {"run", "--rm", "busybox", "true"}} {
			if err := harness.Exec(nil, b.bin, b.args(args...)...)(ctx); err != nil {
				return nil, err
			}
		}
		return work, nil
	}
	berth.Teardown = stopBerth(env.Berth)
	return harness.Row{
		Name:  "run --rm busybox true",
		Note:  runNote,
		Berth: berth,
		Peers: []harness.Side{
			runtimeSide("crun", bb), runtimeSide("runc", bb),
			podmanRunSide("podman run --rm", bb, nil),
			podmanRunSide("podman run --rm --network none", bb, []string{"--network", "none"}),
			dockerRunSide(env, bb),
		},
	}
}

// stopBerth returns a teardown that resets the store in dir with bin
// (`system reset`: its containers, and what its networks made on the host,
// which stays otherwise) and kills the run root's monitor (and, should any
// be left, the containers it watched), so that nothing outlives the run.
func stopBerth(bin string) func(context.Context, string) error {
	return func(ctx context.Context, dir string) error {
		b := berthStore{bin: bin, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
		exec.CommandContext(ctx, b.bin, b.args("system", "reset", "--force")...).Run()
		for _, pid := range processes(func(args []string) bool { return hasArgs(args, "_monitor") && hasArgs(args, "--runroot", b.runroot) }) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	}
}

func runtimeSide(rt string, bb busybox) harness.Side {
	s := harness.Side{
		Name: rt + " run",
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			if rt == "crun" {
				if err := testutil.EnsureHugetlbV1(); err != nil {
					return nil, err
				}
			}
			return harness.Exec(nil, rt, "--root", filepath.Join(dir, "state"), "run", "--bundle", bb.bundle, "bench-"+filepath.Base(dir)), nil
		},
	}
	if _, err := exec.LookPath(rt); err != nil {
		s.Skip = rt + " is not installed"
	}
	return s
}

func podmanRunSide(name string, bb busybox, extra []string) harness.Side {
	args := append(append([]string{"run", "--rm"}, extra...), "busybox", "true")
	s := harness.Side{
		Name: name,
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			p, err := podmanWithBusybox(ctx, dir, bb)
			if err != nil {
				return nil, err
			}
			return harness.Exec(p.Env, p.Bin, p.Args(args...)...), nil
		},
	}
	if err := testutil.PodmanAvailable(); err != nil {
		s.Skip = err.Error()
	}
	return s
}

// dockerRunSide is `docker run --rm busybox true` against the bench's
// dockerd (started once for the run row and the build rows).
func dockerRunSide(env Env, bb busybox) harness.Side {
	return harness.Side{
		Name: "docker run --rm",
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			d, err := startDockerd(env, bb)
			if err != nil {
				return nil, err
			}
			return d.exec("run", "--rm", "busybox", "true"), nil
		},
	}
}

// podmanWithBusybox makes fresh podman storage in dir (runc, cgroupfs)
// with busybox imported.
func podmanWithBusybox(ctx context.Context, dir string, bb busybox) (*testutil.Podman, error) {
	p, err := testutil.SetupPodman(dir, "runc")
	if err != nil {
		return nil, err
	}
	if err := harness.Exec(p.Env, p.Bin, p.Args("import", "-q", "-c", `CMD ["sh"]`, bb.tar, "busybox")...)(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// densityResult is what one density run measured beside its time.
type densityResult struct {
	mu    sync.Mutex
	lines []string
}

func (r *densityResult) add(format string, args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *densityResult) report() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines
}

// idleSettle is how long both engines are left alone before their idle
// memory is measured: berth's monitor trims itself after 2 s of quiet.
const idleSettle = 5 * time.Second

// density starts n idle containers (run -d busybox sleep 3600, one after
// the other) and times that; untimed after, it checks that all n run,
// measures the PSS of every process the engine keeps running outside the
// containers for them (berth: its monitor; podman: one conmon each), and
// removes everything. With podman, podman does the same in the same run.
func density(env Env, bb busybox, n int, withPodman bool, runFlags []string) harness.Row {
	runArgs := append(append([]string{"run", "-d"}, runFlags...), "busybox", "sleep", "3600")
	res := &densityResult{}
	berth := harness.Side{
		Name: fmt.Sprintf("berth: start %d", n),
		Skip: env.BerthSkip,
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			b := berthStore{bin: env.Berth, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
			if err := harness.Exec(nil, b.bin, b.args("import", "-c", `CMD ["sh"]`, bb.tar, "busybox")...)(ctx); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				for i := range n {
					if err := harness.Exec(nil, b.bin, b.args(runArgs...)...)(ctx); err != nil {
						return fmt.Errorf("container %d: %w", i+1, err)
					}
				}
				return nil
			}, nil
		},
		Teardown: func(ctx context.Context, dir string) error {
			b := berthStore{bin: env.Berth, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
			// Idle containers: measure what stays once nothing is asked
			// of either engine (the same settling time for podman).
			time.Sleep(idleSettle)
			pids := processes(func(args []string) bool { return hasArgs(args, "--runroot", b.runroot) })
			pss, rss := memory(pids)
			out, _ := exec.CommandContext(ctx, b.bin, b.args("ps", "-q")...).Output()
			running := len(strings.Fields(string(out)))
			res.add("berth: %d of %d running at once; %d berth process(es) left running (the monitor): "+
				"PSS %.2f MB, RSS %.2f MB in all; per container PSS %.3f MB, RSS %.3f MB",
				running, n, len(pids), pss/1e6, rss/1e6, pss/1e6/float64(max(running, 1)), rss/1e6/float64(max(running, 1)))
			start := time.Now()
			ids := strings.Fields(string(out))
			var err error
			for len(ids) > 0 {
				k := min(len(ids), 100)
				if e := harness.Exec(nil, b.bin, b.args(append([]string{"rm", "-f"}, ids[:k]...)...)...)(ctx); e != nil && err == nil {
					err = e
				}
				ids = ids[k:]
			}
			res.add("berth: removed all %d in %.1f s", running, time.Since(start).Seconds())
			stopBerth(env.Berth)(ctx, dir)
			return err
		},
	}
	row := harness.Row{
		Name:   strings.TrimSpace(fmt.Sprintf("density: %d idle containers %s", n, strings.Join(runFlags, " "))),
		Runs:   1,
		OptIn:  true,
		Berth:  berth,
		Report: res.report,
		Note: fmt.Sprintf("time to start %d idle containers (`run -d busybox sleep 3600`, one after the other, "+
			"each engine on its default network: a bridge) in a store with busybox imported (podman: runc, cgroupfs); then, untimed, after 5 s with no request to either engine, the PSS and RSS (/proc/PID/smaps_rollup) of every "+
			"process the engine keeps running for them outside the containers, divided by the number running; then all removed", n),
	}
	if withPodman {
		row.Peers = []harness.Side{podmanDensity(bb, n, res)}
	} else {
		row.Peers = []harness.Side{{Name: "podman", Skip: "not run at this count: see the 100-container row for podman's cost per container"}}
	}
	return row
}

func podmanDensity(bb busybox, n int, res *densityResult) harness.Side {
	var p *testutil.Podman
	s := harness.Side{
		Name: fmt.Sprintf("podman: start %d", n),
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			var err error
			if p, err = podmanWithBusybox(ctx, dir, bb); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				for i := range n {
					if err := harness.Exec(p.Env, p.Bin, p.Args("run", "-d", "busybox", "sleep", "3600")...)(ctx); err != nil {
						return fmt.Errorf("container %d: %w", i+1, err)
					}
				}
				return nil
			}, nil
		},
		Teardown: func(ctx context.Context, dir string) error {
			time.Sleep(idleSettle)
			pids := processes(func(args []string) bool {
				return len(args) > 0 && filepath.Base(args[0]) == "conmon" && strings.Contains(strings.Join(args, " "), dir)
			})
			pss, rss := memory(pids)
			cmd := p.Command(ctx, "ps", "-q")
			out, _ := cmd.Output()
			running := len(strings.Fields(string(out)))
			res.add("podman: %d of %d running at once; %d conmon process(es): PSS %.2f MB, RSS %.2f MB in all; "+
				"per container PSS %.3f MB, RSS %.3f MB", running, n, len(pids), pss/1e6, rss/1e6, pss/1e6/float64(max(running, 1)), rss/1e6/float64(max(running, 1)))
			rm := p.Command(ctx, "rm", "-f", "-t", "0", "-a")
			if out, err := rm.CombinedOutput(); err != nil {
				return fmt.Errorf("podman rm -af: %w\n%s", err, out)
			}
			return nil
		},
	}
	if err := testutil.PodmanAvailable(); err != nil {
		s.Skip = err.Error()
	}
	return s
}

// processes returns the pids of the processes whose argument list matches.
func processes(match func(args []string) bool) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hasArgs reports whether args holds want as consecutive arguments.
func hasArgs(args []string, want ...string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		if slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// memory sums the PSS and RSS, in bytes, of pids from smaps_rollup.
func memory(pids []int) (pss, rss float64) {
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 2 {
				continue
			}
			kb, err := strconv.ParseFloat(fs[1], 64)
			if err != nil {
				continue
			}
			switch fs[0] {
			case "Pss:":
				pss += kb * 1024
			case "Rss:":
				rss += kb * 1024
			}
		}
		f.Close()
	}
	return pss, rss
}
