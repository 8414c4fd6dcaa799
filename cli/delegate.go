package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/errdefs"
)

// ImageToolsBinary is the binary that holds the image tools: build, pull,
// push, login, logout, manifest and registry (package cli/imagetools).
// They are berth commands like the others, but their dependencies
// (BuildKit's Dockerfile parser, go-containerregistry, net/http and TLS,
// the registry server) would cost every other command about a millisecond
// to load and initialize — `berth run` included, on every container
// started. So the berth binary leaves them out and runs them through
// this one, found next to it or on $PATH, which holds every command.
const ImageToolsBinary = "berth-imagetools"

// toolShort are the image tools' one-line descriptions, for the help of a
// binary that runs them through ImageToolsBinary.
var toolShort = map[string]string{
	"build":    "Build an image from a Dockerfile",
	"pull":     "Download an image from a registry",
	"push":     "Upload an image to a registry",
	"login":    "Log in to a registry",
	"logout":   "Log out from a registry",
	"manifest": "Inspect image manifests and manifest lists",
	"registry": "Run berth's own OCI distribution registry",
}

// tool returns the image tool name: the command this binary adds (Main's
// extra), or one that runs the command line through ImageToolsBinary.
func (a *App) tool(name string) *cobra.Command {
	if c, ok := a.extra[name]; ok {
		return c.Make(a)
	}
	return &cobra.Command{
		Use:   name,
		Short: toolShort[name],
		// Flags, --help included, are the tool's to parse.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.delegate(cmd.Context(), name)
		},
	}
}

// delegate runs this command line (global options and all) with
// ImageToolsBinary. With the process's own standard streams, the tool
// replaces this process, so that its signals, terminal and exit status
// are the user's own; otherwise (berth as a library) it runs as a child
// on the App's streams.
func (a *App) delegate(ctx context.Context, name string) error {
	bin, err := imageTools()
	if err != nil {
		return errdefs.NotFound("berth %s: %v", name, err)
	}
	if a.In == os.Stdin && a.Out == os.Stdout && a.Err == os.Stderr {
		err := syscall.Exec(bin, append([]string{bin}, a.args...), os.Environ())
		return fmt.Errorf("berth %s: run %s: %w", name, bin, err)
	}
	cmd := exec.CommandContext(ctx, bin, a.args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.In, a.Out, a.Err
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() >= 0 {
			return exitError{ee.ExitCode()}
		}
		return fmt.Errorf("berth %s: run %s: %w", name, bin, err)
	}
	return nil
}

// imageTools finds ImageToolsBinary: next to the running binary (symbolic
// links resolved), as make build and packages install them, or on $PATH.
func imageTools() (string, error) {
	self, err := os.Executable()
	if err == nil {
		if p, err := filepath.EvalSymlinks(self); err == nil {
			self = p
		}
		p := filepath.Join(filepath.Dir(self), ImageToolsBinary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(ImageToolsBinary); err == nil {
		return p, nil
	}
	return "", errors.New(ImageToolsBinary + " is neither next to " + self + " nor on $PATH: install it with berth")
}
