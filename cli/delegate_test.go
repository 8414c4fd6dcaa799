package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestImageToolsRunThroughTheirBinary: a binary that does not add the
// image tools runs each of them, nested ones too, through
// berth-imagetools with the whole command line, and returns its exit
// status and output as its own; without that binary, it says so and
// changes nothing.
func TestImageToolsRunThroughTheirBinary(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\necho \"tool: $*\"\necho \"to stderr\" >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, ImageToolsBinary), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	root := filepath.Join(t.TempDir(), "root")
	for _, args := range [][]string{
		{"--root", root, "pull", "--platform", "linux/arm64", "busybox"},
		{"--root", root, "image", "push", "localhost:5000/x"},
		{"--root", root, "build", "--help"},
		{"--root", root, "registry", "serve", "--addr", "127.0.0.1:0"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != 3 || out.String() != "tool: "+strings.Join(args, " ")+"\n" || errb.String() != "to stderr\n" {
			t.Errorf("berth %q: exit %d, stdout %q, stderr %q; want the tool's 3, its arguments, its stderr", args, code, out.String(), errb.String())
		}
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the data root was made for a command another binary runs: %v", err)
	}

	t.Setenv("PATH", t.TempDir())
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--root", root, "pull", "busybox"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != ExitEngineError || !strings.Contains(errb.String(), ImageToolsBinary+" is neither next to") {
		t.Errorf("berth pull without %s: exit %d, %q", ImageToolsBinary, code, errb.String())
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("berth pull without %s made the data root: %v", ImageToolsBinary, err)
	}
}

// TestImageToolsBinaryHandsNothingOver: the binary the tools run through
// never hands a command over again (to itself), even one it lacks.
func TestImageToolsBinaryHandsNothingOver(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, ImageToolsBinary), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	build := Command{Names: []string{"build"}, Make: func(*App) *cobra.Command {
		return &cobra.Command{Use: "build", RunE: func(*cobra.Command, []string) error { return nil }}
	}}
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"pull", "busybox"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, build)
	if code != ExitEngineError || out.String() != "" || !strings.Contains(errb.String(), "does not provide it") {
		t.Errorf("pull in a binary that adds only build: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
