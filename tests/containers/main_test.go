// Package containers tests berth's container lifecycle end to end, as a
// Docker user types it: the berth binary against a private data root and
// run root per test, on the real kernel, as root. Each test removes what it
// started (containers, their processes, the monitor) when it ends.
package containers

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/procfs"
	"github.com/berth-dev/berth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// env is a berth with the busybox image imported as "busybox".
type env struct {
	*testutil.Berth
	t *testing.T
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvDriver(t, "")
}

// newEnvDriver is newEnv with the storage driver named (the default when
// empty).
func newEnvDriver(t *testing.T, driver string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containers need root")
	}
	e := &env{Berth: testutil.NewBerth(t), t: t}
	if driver != "" {
		e.Env = append(e.Env, "BERTH_STORAGE_DRIVER="+driver)
	}
	// Registered after NewBerth's cleanup, so it runs before the roots are
	// unmounted and removed.
	t.Cleanup(e.cleanup)
	e.MustRun("import", "-c", `CMD ["sh"]`, testutil.Images(t).Busybox, "busybox")
	return e
}

// commandBound is how long any one berth command may take in these tests:
// far more than any needs, so that a hang fails the test with its output
// rather than stalling the run.
const commandBound = 60 * time.Second

// run runs berth with args, failing the test if it does not finish within
// commandBound.
func (e *env) run(args ...string) testutil.Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Bin, e.Args(args...)...)
	cmd.Env = e.Env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	res := testutil.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.t.Fatalf("berth %s: hung for %v\n%s", strings.Join(args, " "), commandBound, res)
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// must runs berth with args and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	res := e.run(args...)
	if res.Code != 0 {
		e.t.Fatalf("berth %s: %s", strings.Join(args, " "), res)
	}
	return strings.TrimSpace(res.Stdout)
}

// inspect returns a container's field rendered by a Go template.
func (e *env) inspect(ref, format string) string {
	e.t.Helper()
	return e.must("inspect", "-f", format, ref)
}

// pid returns the pid of a running container's init.
func (e *env) pid(ref string) int {
	e.t.Helper()
	pid, err := strconv.Atoi(e.inspect(ref, "{{.State.Pid}}"))
	if err != nil || pid <= 0 {
		e.t.Fatalf("container %s has no pid (%q, %v)", ref, e.inspect(ref, "{{json .State}}"), err)
	}
	return pid
}

// waitFor polls cond (the state lives on disk and in other processes; there
// is nothing to wait on) until it holds, failing the test after a generous
// bound that no correct run comes near.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(commandBound)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanup removes every container of this berth, kills what is left of
// them and the monitor, and removes their cgroups.
func (e *env) cleanup() {
	ids := strings.Fields(e.Run("ps", "-aq", "--no-trunc").Stdout)
	if len(ids) > 0 {
		e.Run(append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	for _, id := range ids {
		for _, dir := range cgroupDirs(id) {
			for _, pid := range cgroupProcs(dir) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, pid := range monitorPids(e.RunRoot) {
		syscall.Kill(pid, syscall.SIGKILL)
		waitGone(pid)
	}
	for _, id := range ids {
		dirs := cgroupDirs(id)
		for i := len(dirs) - 1; i >= 0; i-- {
			removeCgroup(dirs[i])
		}
	}
}

// monitorPids returns the pids of the monitors serving runRoot.
func monitorPids(runRoot string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		isMonitor, ours := false, false
		for i, a := range args {
			isMonitor = isMonitor || a == "_monitor"
			ours = ours || a == "--runroot" && i+1 < len(args) && args[i+1] == runRoot
		}
		if isMonitor && ours {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func waitGone(pid int) {
	for i := 0; i < 500 && alive(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// cgroupMounts returns the mount points of every cgroup hierarchy, v1
// controllers and the unified one.
func cgroupMounts() []string {
	ms, _ := procfs.Mounts()
	var out []string
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m.Point)
		}
	}
	return out
}

// cgroupMount returns the mount point of the v1 hierarchy with controller,
// or "" if it has none.
func cgroupMount(controller string) string {
	ms, _ := procfs.Mounts()
	for _, m := range ms {
		if m.FSType != "cgroup" {
			continue
		}
		for opt := range strings.SplitSeq(m.SuperOptions, ",") {
			if opt == controller {
				return m.Point
			}
		}
	}
	return ""
}

// cgroupDirs returns every directory berth/<id> (and below) in every
// cgroup hierarchy.
func cgroupDirs(id string) []string {
	var dirs []string
	for _, m := range cgroupMounts() {
		filepath.WalkDir(m, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if d.Name() == id && filepath.Base(filepath.Dir(p)) == "berth" {
				dirs = append(dirs, p)
				filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
					if err == nil && d.IsDir() && q != p {
						dirs = append(dirs, q)
					}
					return nil
				})
				return filepath.SkipDir
			}
			return nil
		})
	}
	return dirs
}

func cgroupProcs(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func removeCgroup(dir string) {
	for i := 0; i < 100; i++ {
		if err := syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mountsUnder returns the mount points in /proc/self/mountinfo at or below
// dir, less the tmpfs berth keeps on a run root of its own making (see
// engine's prepareRunRoot), which no container owns.
func mountsUnder(dir string) []string {
	ms, _ := procfs.Mounts()
	var out []string
	for _, m := range ms {
		if m.Point == dir && m.FSType == "tmpfs" {
			continue
		}
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	return out
}

// leftovers lists what container id (whose init was pid, 0 if unknown)
// still holds on the host: mounts, cgroups, its process, state
// directories, its record.
func (e *env) leftovers(id string, pid int) []string {
	var out []string
	for _, root := range []string{e.Root, e.RunRoot} {
		for _, m := range mountsUnder(root) {
			if strings.Contains(m, id) {
				out = append(out, "mount "+m)
			}
		}
	}
	for _, d := range cgroupDirs(id) {
		out = append(out, "cgroup "+d)
	}
	if pid > 0 && alive(pid) {
		out = append(out, "process "+strconv.Itoa(pid))
	}
	for _, d := range []string{
		filepath.Join(e.RunRoot, "containers", id),
		filepath.Join(e.RunRoot, "runtime", id),
		filepath.Join(e.Root, "containers", id),
	} {
		if _, err := os.Lstat(d); err == nil {
			out = append(out, "state "+d)
		}
	}
	return out
}

// expectStore waits until the data root is as it was before (a container
// removed by its monitor, --rm, is gone when the command returns, and its
// files a moment later), and fails the test with the difference if it
// never is.
func (e *env) expectStore(before string) {
	e.t.Helper()
	deadline := time.Now().Add(commandBound)
	for {
		after := e.storeListing()
		if after == before {
			return
		}
		if time.Now().After(deadline) {
			e.t.Errorf("the data root changed:\n%s", lineDiff(before, after))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storeListing is testutil.StoreListing of the data root without the
// mtimes and logs that other containers change.
func (e *env) storeListing() string {
	e.t.Helper()
	// Once the files of containers just removed are purged (see
	// expectStore).
	e.waitFor("removed containers' files are purged", func() bool {
		return !hasEntry(filepath.Join(e.Root, "containers"), ".removed-") &&
			!hasEntry(filepath.Join(e.Root, "snapshots", "overlay", "tmp"), "rm-") &&
			!hasEntry(filepath.Join(e.Root, "snapshots", "native", "tmp"), "rm-")
	})
	return testutil.StoreListing(e.t, e.Root)
}

// hasEntry reports whether dir holds an entry whose name starts with prefix.
func hasEntry(dir, prefix string) bool {
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), prefix) {
			return true
		}
	}
	return false
}
