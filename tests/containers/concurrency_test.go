package containers

import (
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestTwentyRunsAtOnce: twenty run -d started at once all succeed, with
// distinct names and addresses.
func TestTwentyRunsAtOnce(t *testing.T) {
	e := newEnv(t)
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i] = e.must("run", "-d", "busybox", "sleep", "1000") })
	}
	wg.Wait()
	names, addrs := map[string]bool{}, map[string]bool{}
	for _, id := range ids {
		if got := e.inspect(id, "{{.State.Status}}"); got != "running" {
			t.Errorf("container %s is %s, want running", id[:12], got)
		}
		name := e.inspect(id, "{{.Name}}")
		if names[name] {
			t.Errorf("name %s given twice", name)
		}
		names[name] = true
		if ip := e.inspect(id, "{{.NetworkSettings.IPAddress}}"); ip != "" {
			if addrs[ip] {
				t.Errorf("address %s given twice", ip)
			}
			addrs[ip] = true
		}
	}
	if got := len(strings.Fields(e.must("ps", "-q"))); got != n {
		t.Errorf("ps lists %d running containers, want %d", got, n)
	}
	e.must(append([]string{"rm", "-f"}, ids...)...)
	for _, id := range ids {
		if left := e.leftovers(id, 0); len(left) > 0 {
			t.Errorf("container %s left behind:\n%s", id[:12], strings.Join(left, "\n"))
		}
	}
}

// TestRmRacingExit: rm -f of a container that is exiting at that moment
// (its process was just killed, or it has --rm and its monitor removes it)
// succeeds once or says it is gone, never errors otherwise, and leaves
// nothing behind.
func TestRmRacingExit(t *testing.T) {
	e := newEnv(t)
	for i := range 10 {
		for _, autoRemove := range []bool{false, true} {
			args := []string{"run", "-d", "busybox", "sleep", "1000"}
			if autoRemove {
				args = []string{"run", "-d", "--rm", "busybox", "sleep", "1000"}
			}
			id := e.must(args...)
			pid := e.pid(id)
			var wg sync.WaitGroup
			results := make([]string, 2)
			codes := make([]int, 2)
			syscall.Kill(pid, syscall.SIGKILL)
			for j := range 2 {
				wg.Go(func() {
					res := e.run("rm", "-f", id)
					results[j], codes[j] = strings.TrimSpace(res.Stderr), res.Code
				})
			}
			wg.Wait()
			ok := 0
			for j := range 2 {
				switch {
				case codes[j] == 0:
					ok++
				case strings.Contains(results[j], "No such container") ||
					strings.Contains(results[j], "is already in progress"):
				default:
					t.Errorf("round %d (--rm %v): rm -f racing the exit: exit %d: %s", i, autoRemove, codes[j], results[j])
				}
			}
			if ok == 0 && !autoRemove {
				t.Errorf("round %d: neither rm -f succeeded: %q", i, results)
			}
			e.waitFor("container "+id[:12]+" is gone", func() bool { return e.run("inspect", id).Code != 0 })
			if left := e.leftovers(id, pid); len(left) > 0 {
				t.Errorf("round %d (--rm %v): left behind:\n%s", i, autoRemove, strings.Join(left, "\n"))
			}
		}
	}
}

// restartWindow is how long a test watches for a restart that must not
// come: several times the monitor's back-off before the restarts these
// tests could trigger.
const restartWindow = 2 * time.Second

// TestRestartOnFailure: --restart on-failure:2 runs a failing command
// three times in all, then leaves it exited with RestartCount 2.
func TestRestartOnFailure(t *testing.T) {
	e := newEnv(t)
	id := e.must("run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo ran; exit 3")
	e.waitFor("the container ran three times", func() bool {
		return strings.Count(e.must("logs", id), "ran") >= 3 &&
			e.inspect(id, "{{.State.Status}}") == "exited"
	})
	// It must stay down. A third restart would come after a back-off of
	// 100 ms << 2; watch well past it.
	time.Sleep(restartWindow)
	if got := e.must("wait", id); got != "3" {
		t.Errorf("wait: %q, want 3", got)
	}
	if got := e.inspect(id, "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}"); got != "2 exited 3" {
		t.Errorf("RestartCount, Status, ExitCode = %s, want 2 exited 3", got)
	}
	if n := strings.Count(e.must("logs", id), "ran"); n != 3 {
		t.Errorf("the command ran %d times, want 3", n)
	}
}

// TestRestartAlways: --restart always brings a container back after its
// process is killed, but not after stop.
func TestRestartAlways(t *testing.T) {
	e := newEnv(t)
	id := e.must("run", "-d", "--restart", "always", "busybox", "sleep", "1000")
	pid := e.pid(id)
	syscall.Kill(pid, syscall.SIGKILL)
	e.waitFor("the container runs again with a new process", func() bool {
		st := e.inspect(id, "{{.State.Running}} {{.State.Pid}} {{.RestartCount}}")
		f := strings.Fields(st)
		return len(f) == 3 && f[0] == "true" && f[1] != strconv.Itoa(pid) && f[1] != "0" && f[2] == "1"
	})
	e.must("stop", "-t", "1", id)
	if got := e.inspect(id, "{{.State.Status}}"); got != "exited" {
		t.Fatalf("after stop: %s, want exited", got)
	}
	// A restart would come after a back-off of 100 ms << 1; watch well
	// past it.
	time.Sleep(restartWindow)
	if got := e.inspect(id, "{{.State.Status}} {{.RestartCount}}"); got != "exited 1" {
		t.Errorf("after stop: Status, RestartCount = %s, want exited 1 (stop must not restart it)", got)
	}
}
