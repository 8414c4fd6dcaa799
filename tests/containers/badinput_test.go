package containers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput: each bad request is refused with one clear line of
// Docker's wording and exit status 125, and changes neither ps -a nor the
// data root.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.warmUp()
	e.must("create", "--name", "taken", "busybox", "true")
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error line
	}{
		{"unknown image", []string{"run", "nosuchimage"}, "No such image"},
		{"unknown image, create", []string{"create", "nosuchimage", "true"}, "No such image"},
		{"name in use", []string{"run", "--name", "taken", "busybox", "true"}, `The container name "/taken" is already in use`},
		{"name in use, create", []string{"create", "--name", "taken", "busybox", "true"}, `The container name "/taken" is already in use`},
		{"invalid memory", []string{"run", "--memory", "lots", "busybox", "true"}, `invalid argument "lots" for "--memory" flag`},
		{"missing bind source", []string{"run", "--mount", "type=bind,source=/nonexistent,target=/x", "busybox", "true"},
			"bind source path does not exist: /nonexistent"},
		{"kill of a container not running", []string{"kill", "taken"}, "is not running"},
		{"start of a missing container", []string{"start", "nosuchcontainer"}, "No such container: nosuchcontainer"},
		{"stop of a missing container", []string{"stop", "nosuchcontainer"}, "No such container: nosuchcontainer"},
		{"rm of a missing container", []string{"rm", "nosuchcontainer"}, "No such container: nosuchcontainer"},
		{"invalid restart policy", []string{"run", "--restart", "sometimes", "busybox", "true"}, "invalid restart policy"},
		{"--rm with --restart", []string{"run", "--rm", "--restart", "always", "busybox", "true"}, "conflicting options"},
		{"invalid name", []string{"run", "--name", "no/slash", "busybox", "true"}, "Invalid container name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			ps, store := e.must("ps", "-a", "--no-trunc"), e.storeListing()
			res := e.run(tc.args...)
			if res.Code != 125 {
				t.Errorf("exit status %d, want 125\n%s", res.Code, res)
			}
			msg := strings.TrimSpace(res.Stderr)
			if strings.Count(msg, "\n") > 0 || !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "Error") {
				t.Errorf("stderr %q, want one line with %q", msg, tc.want)
			}
			if after := e.must("ps", "-a", "--no-trunc"); after != ps {
				t.Errorf("ps -a changed:\n%s\nthen:\n%s", ps, after)
			}
			if after := e.storeListing(); after != store {
				t.Errorf("the data root changed:\n%s", lineDiff(store, after))
			}
		})
	}
}

// TestCannotRun: a command that cannot be executed exits 126, one that
// does not exist 127, as from a shell; --rm still removes the container.
func TestCannotRun(t *testing.T) {
	e := newEnv(t)
	e.warmUp()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "script"), []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"not executable", []string{"-v", dir + ":/d", "busybox", "/d/script"}, 126},
		{"a directory", []string{"busybox", "/etc"}, 126},
		{"missing command", []string{"busybox", "nosuchcommand"}, 127},
		{"missing path", []string{"busybox", "/no/such/file"}, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			store := e.storeListing()
			res := e.run(append([]string{"run", "--rm"}, tc.args...)...)
			if res.Code != tc.code {
				t.Errorf("exit status %d, want %d\n%s", res.Code, tc.code, res)
			}
			if msg := strings.TrimSpace(res.Stderr); msg == "" || strings.Contains(msg, "\n") {
				t.Errorf("stderr %q, want one line", msg)
			}
			if out := e.must("ps", "-aq"); out != "" {
				t.Errorf("run --rm left a container: %q", out)
			}
			if after := e.storeListing(); after != store {
				t.Errorf("the data root changed:\n%s", lineDiff(store, after))
			}
		})
	}
	// Without --rm the container stays, created, as in Docker.
	res := e.run("run", "--name", "kept", "busybox", "nosuchcommand")
	if res.Code != 127 {
		t.Errorf("run without --rm: exit status %d, want 127\n%s", res.Code, res)
	}
	if got := e.inspect("kept", "{{.State.Running}}"); got != "false" {
		t.Errorf("the container that could not start shows Running %s", got)
	}
}
