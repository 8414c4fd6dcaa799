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

// ImageTools are the names of the image tools: the commands a binary that
// does not add them runs through ImageToolsBinary.
func ImageTools() []string {
	return []string{"build", "pull", "push", "login", "logout", "manifest", "registry"}
}

// toolShort is an image tool's one-line description, for the help of a
// binary that runs it through ImageToolsBinary.
func toolShort(name string) string {
	switch name {
	case "build":
		return "Build an image from a Dockerfile"
	case "pull":
		return "Download an image from a registry"
	case "push":
		return "Upload an image to a registry"
	case "login":
		return "Log in to a registry"
	case "logout":
		return "Log out from a registry"
	case "manifest":
		return "Inspect image manifests and manifest lists"
	case "registry":
		return "Run berth's own OCI distribution registry"
	}
	return ""
}

// tool returns the image tool name: the command this binary adds (Main's
// extra), or one that runs the command line through ImageToolsBinary.
func (a *App) tool(name string) *cobra.Command {
	if c, ok := a.extra[name]; ok {
		return c.Make(a)
	}
	return &cobra.Command{
		Use:   name,
		Short: toolShort(name),
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
	if len(a.extra) > 0 {
		// This binary adds commands: it is the one tools run through.
		return errdefs.NotImplemented("berth %s: this binary does not provide it", name)
	}
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
	return "", errors.New(ImageToolsBinary + " is neither next to " + self + " nor on $PATH: install it beside berth")
}
