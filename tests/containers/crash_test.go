package containers

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// killMonitor kills the run root's monitor with SIGKILL and waits until it
// is gone.
func (e *env) killMonitor() {
	e.t.Helper()
	pids := monitorPids(e.RunRoot)
	if len(pids) == 0 {
		e.t.Fatal("no monitor runs for this run root")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			e.t.Fatal(err)
		}
		waitGone(pid)
	}
}

// TestMonitorKilled: the monitor dies with SIGKILL, then the container's
// process dies while nothing watches it. The next ps shows it exited, rm
// cleans everything, and no command hangs. With a new monitor started in
// between (by another container's run), the same holds: that monitor does
// not know the first container.
func TestMonitorKilled(t *testing.T) {
	for _, tc := range []struct {
		name       string
		newMonitor bool // start another container after the kill
	}{
		{"no monitor after", false},
		{"new monitor after", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.must("run", "-d", "busybox", "sleep", "1000")
			pid := e.pid(id)
			e.killMonitor()
			if got := e.inspect(id, "{{.State.Status}}"); got != "running" {
				t.Fatalf("after the monitor died, the running container shows %q, want running", got)
			}
			var other string
			if tc.newMonitor {
				other = e.must("run", "-d", "busybox", "sleep", "1000")
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			e.waitFor("the container's process is gone", func() bool { return !alive(pid) })

			ps := e.must("ps", "-a", "--no-trunc", "--filter", "id="+id, "--format", "{{.State}} {{.Status}}")
			if !strings.HasPrefix(ps, "exited Exited (") {
				t.Errorf("ps -a after the process died unwatched: %q, want it exited", ps)
			}
			if running := e.must("ps", "-q", "--no-trunc"); strings.Contains(running, id) {
				t.Errorf("ps lists the dead container as running:\n%s", running)
			}
			if got := e.inspect(id, "{{.State.Running}} {{.State.Pid}}"); got != "false 0" {
				t.Errorf("inspect Running, Pid = %s, want false 0", got)
			}
			e.must("rm", id)
			if left := e.leftovers(id, pid); len(left) > 0 {
				t.Errorf("rm left behind:\n%s", strings.Join(left, "\n"))
			}
			if other != "" {
				e.must("rm", "-f", other)
			}
		})
	}
}

// TestMonitorKilledContainerRunning: after the monitor dies, a container
// still running can be stopped and removed, and the next ps shows the
// truth.
func TestMonitorKilledContainerRunning(t *testing.T) {
	e := newEnv(t)
	stopped := e.must("run", "-d", "busybox", "sleep", "1000")
	removed := e.must("run", "-d", "busybox", "sleep", "1000")
	pids := map[string]int{stopped: e.pid(stopped), removed: e.pid(removed)}
	e.killMonitor()

	e.must("stop", "-t", "1", stopped)
	if got := e.inspect(stopped, "{{.State.Status}} {{.State.Running}}"); got != "exited false" {
		t.Errorf("stop with the monitor gone: state %q, want exited false", got)
	}
	e.must("rm", "-f", removed)
	e.must("rm", stopped)
	if out := e.must("ps", "-aq"); out != "" {
		t.Errorf("ps -a after rm: %q, want nothing", out)
	}
	for id, pid := range pids {
		if left := e.leftovers(id, pid); len(left) > 0 {
			t.Errorf("container %s left behind:\n%s", id[:12], strings.Join(left, "\n"))
		}
	}
}

// TestMonitorHandsOverToNewBinary replaces the berth binary (as an upgrade
// or a rebuild does) between runs: the monitor of the old binary hands
// over to the new one, and no command fails on the way.
func TestMonitorHandsOverToNewBinary(t *testing.T) {
	e := newEnv(t)
	orig, err := os.ReadFile(e.Bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e.Bin = filepath.Join(dir, "berth")
	replace := func() {
		t.Helper()
		// A new file renamed over the old one: the running monitor's
		// executable is now deleted.
		if err := os.WriteFile(e.Bin+".new", orig, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(e.Bin+".new", e.Bin); err != nil {
			t.Fatal(err)
		}
	}
	replace()
	var monitors []int
	for i := range 10 {
		if res := e.run("run", "--rm", "busybox", "true"); res.Code != 0 {
			t.Fatalf("run %d after replacing the binary: %s", i, res)
		}
		monitors = append(monitors, monitorPids(e.RunRoot)...)
		replace()
	}
	if len(slices.Compact(monitors)) < 2 {
		t.Errorf("one monitor served every run (%v): it never handed over", monitors)
	}
}

// TestResetStopsMonitor: system reset leaves no monitor behind. One that
// outlived its run root kept serving it and, once idle, removed the socket
// path at which a new monitor (of the run root made again) listened:
// every later command then failed to connect.
func TestResetStopsMonitor(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.must("run", "-d", "busybox", "sleep", "1000")
	}
	if len(monitorPids(e.RunRoot)) == 0 {
		t.Fatal("no monitor runs for this run root")
	}
	e.must("system", "reset", "--force")
	if pids := monitorPids(e.RunRoot); len(pids) > 0 {
		t.Fatalf("monitor(s) %v still run after system reset", pids)
	}
	e.must("import", "-c", `CMD ["sh"]`, testutil.Images(t).Busybox, "busybox")
	id := e.must("run", "-d", "busybox", "sleep", "1000")
	if got := e.inspect(id, "{{.State.Status}}"); got != "running" {
		t.Fatalf("a container run after the reset is %q, want running", got)
	}
	// With a container running, the monitor refuses to go, and reset
	// (which removes the container first) still leaves none.
	e.must("system", "reset", "--force")
	if pids := monitorPids(e.RunRoot); len(pids) > 0 {
		t.Fatalf("monitor(s) %v still run after the second system reset", pids)
	}
}
