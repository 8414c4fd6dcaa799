package cli

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

// TestCommandNames checks that the names each top-level command is listed
// under are the ones it answers to, so that a command line naming one
// command (which builds that command alone) finds it.
func TestCommandNames(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands() {
		cmd := c.make(&App{})
		want := append([]string{cmd.Name()}, cmd.Aliases...)
		if !slices.Equal(c.names, want) {
			t.Errorf("command %q is listed as %q, answers to %q", cmd.Name(), c.names, want)
		}
		for _, n := range c.names {
			if seen[n] {
				t.Errorf("two commands answer to %q", n)
			}
			seen[n] = true
		}
	}
	full := newRoot(&App{}, "")
	if got := len(full.Commands()); got != len(commands()) {
		t.Errorf("the full tree has %d commands, the list %d", got, len(commands()))
	}
	if only := newRoot(&App{}, "run"); len(only.Commands()) != 1 || only.Commands()[0].Name() != "run" {
		t.Errorf("newRoot for run made %d commands", len(only.Commands()))
	}
}

// TestHelpListsEveryCommand: `berth --help` and an unknown command still
// see the whole tree.
func TestHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"--root", t.TempDir(), "--help"}} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 {
			t.Fatalf("berth %q: exit %d: %s", args, code, errb.String())
		}
		for _, name := range []string{"run", "build", "network", "volume", "pull", "registry"} {
			if !strings.Contains(out.String(), "\n  "+name+" ") {
				t.Errorf("berth %q does not list %s:\n%s", args, name, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"nosuchcommand"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != ExitEngineError || !strings.Contains(errb.String(), `unknown command "nosuchcommand"`) {
		t.Errorf("berth nosuchcommand: exit %d, %q", code, errb.String())
	}
}
