package imagetools

import (
	"slices"
	"testing"

	"github.com/berth-dev/berth/cli"
)

// TestCommandNames: each image tool answers to the names it is added
// under, so that a command line naming it finds it.
func TestCommandNames(t *testing.T) {
	for _, c := range Commands() {
		cmd := c.Make(&cli.App{})
		if want := append([]string{cmd.Name()}, cmd.Aliases...); !slices.Equal(c.Names, want) {
			t.Errorf("command %q is added as %q, answers to %q", cmd.Name(), c.Names, want)
		}
	}
}
