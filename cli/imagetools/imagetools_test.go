package imagetools

import (
	"slices"
	"testing"

	"github.com/berth-dev/berth/cli"
)

// TestCommandNames: each image tool answers to the names it is added
// under, so that a command line naming it finds it, and they are the
// tools the berth binary hands over: one it hands over that is not here
// would fail in both.
func TestCommandNames(t *testing.T) {
	var names []string
	for _, c := range Commands() {
		cmd := c.Make(&cli.App{})
		if want := append([]string{cmd.Name()}, cmd.Aliases...); !slices.Equal(c.Names, want) {
			t.Errorf("command %q is added as %q, answers to %q", cmd.Name(), c.Names, want)
		}
		names = append(names, c.Names...)
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(cli.ImageTools()))
	if !slices.Equal(names, want) {
		t.Errorf("the image tools are %q, berth hands over %q", names, want)
	}
}
