package containers

import (
	"strconv"
	"strings"
	"testing"
)

// TestNothingLeaks: once a container is removed, no mount, cgroup,
// process, state directory or file of it remains, whichever way it ran and
// was removed.
func TestNothingLeaks(t *testing.T) {
	e := newEnv(t)
	e.warmUp()
	bind := t.TempDir()
	for _, tc := range []struct {
		name string
		run  []string // after "run"; the container's ID is printed
		rm   []string // how to remove it; nil when --rm removes it
	}{
		{"run -d, rm -f", []string{"-d", "busybox", "sleep", "1000"}, []string{"rm", "-f"}},
		{"run -d, stop, rm", []string{"-d", "busybox", "sleep", "1000"}, []string{"stop", "-t", "0"}},
		{"exited, rm", []string{"-d", "busybox", "true"}, []string{"wait"}},
		{"mounts, rm -f", []string{"-d", "--tmpfs", "/run", "--mount", "type=bind,source=" + bind + ",target=/b",
			"--mount", "type=tmpfs,target=/t", "--read-only", "busybox", "sleep", "1000"}, []string{"rm", "-f"}},
		{"memory limit, rm -f", []string{"-d", "--memory", "32m", "--pids-limit", "20", "busybox", "sleep", "1000"}, []string{"rm", "-f"}},
		{"run -d --rm", []string{"-d", "--rm", "busybox", "true"}, nil},
		{"create, rm", nil, []string{"rm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			before := e.storeListing()
			var id string
			pid := 0
			if tc.run == nil {
				id = e.must("create", "busybox", "true")
			} else {
				id = e.must(append([]string{"run"}, tc.run...)...)
				// (An --rm container may be gone already, and a short-lived
				// one may exit between two reads: take the pid only from a
				// record that says running.)
				if res := e.run("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", id); res.Code == 0 {
					if running, p, _ := strings.Cut(strings.TrimSpace(res.Stdout), " "); running == "true" {
						pid, _ = strconv.Atoi(p)
					}
				}
			}
			switch {
			case tc.rm == nil:
				e.waitFor("--rm removed the container", func() bool {
					return e.run("inspect", id).Code != 0
				})
			case tc.rm[0] == "rm":
				e.must(append(tc.rm, id)...)
			default:
				e.must(append(tc.rm, id)...)
				e.must("rm", id)
			}
			if left := e.leftovers(id, pid); len(left) > 0 {
				t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
			}
			e.expectStore(before)
			if out := e.must("ps", "-aq"); out != "" {
				t.Errorf("ps -a after rm: %q", out)
			}
		})
	}
}

// TestRunRmForegroundLeavesNothing: a foreground run --rm is gone when the
// command returns, with nothing of it left.
func TestRunRmForegroundLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.warmUp()
	before := e.storeListing()
	res := e.run("run", "--rm", "--name", "fg", "busybox", "sh", "-c", "exit 3")
	if res.Code != 3 {
		t.Fatalf("run --rm exiting 3: %s", res)
	}
	if res := e.run("inspect", "fg"); res.Code == 0 {
		t.Errorf("the container is still there after run --rm returned")
	}
	e.expectStore(before)
	for _, root := range []string{e.Root, e.RunRoot} {
		if ms := mountsUnder(root); len(ms) > 0 {
			t.Errorf("mounts left under %s:\n%s", root, strings.Join(ms, "\n"))
		}
	}
}

// warmUp runs a first container, so that what berth makes once per data
// root (the default networks, the name index's lock) is there before a
// listing is taken.
func (e *env) warmUp() {
	e.t.Helper()
	e.must("run", "--rm", "busybox", "true")
}

// lineDiff lists the lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for l := range strings.Lines(s) {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out strings.Builder
	for l := range strings.Lines(a) {
		if !mb[l] {
			out.WriteString("- " + l)
		}
	}
	for l := range strings.Lines(b) {
		if !ma[l] {
			out.WriteString("+ " + l)
		}
	}
	return out.String()
}

// TestFailedStartLeavesNoMount: run mounts the container's root while it
// writes the record, for the monitor to use; a start that then fails (here
// the network refuses the address) leaves no mount, with or without --rm,
// and the container that stays (without --rm) starts later and is removed
// cleanly.
func TestFailedStartLeavesNoMount(t *testing.T) {
	e := newEnv(t)
	e.warmUp()
	for _, rm := range []bool{false, true} {
		args := []string{"run", "-d", "--name", "bad" + strconv.FormatBool(rm), "--ip", "192.0.2.7", "busybox", "sleep", "1000"}
		if rm {
			args = append(args[:2], append([]string{"--rm"}, args[2:]...)...)
		}
		res := e.run(args...)
		if res.Code != 125 || !strings.Contains(res.Stderr, "192.0.2.7") {
			t.Fatalf("run with an address outside the network (rm %v): %s", rm, res)
		}
		for _, root := range []string{e.Root, e.RunRoot} {
			if ms := mountsUnder(root); len(ms) > 0 {
				t.Errorf("mounts left under %s after a failed start (rm %v):\n%s", root, rm, strings.Join(ms, "\n"))
			}
		}
	}
	// The container run left (created) starts without the bad address?
	// Its address is part of it: it fails the same way, and rm cleans.
	id := strings.TrimSpace(e.must("inspect", "-f", "{{.Id}}", "badfalse"))
	if res := e.run("start", id); res.Code == 0 {
		t.Errorf("start of a container with an address outside its network succeeded")
	}
	e.must("rm", id)
	if left := e.leftovers(id, 0); len(left) > 0 {
		t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
}
