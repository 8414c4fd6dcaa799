// Package cli is berth's command line: Docker's command names, flags,
// output and exit codes, each command a thin translation onto one engine
// method. It holds no logic another front (the Docker API, the CRI) would
// need again.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	runtimecli "github.com/berth-dev/berth/runtime/cli"
)

// Exit codes, as Docker uses them.
const (
	ExitEngineError   = 125
	ExitCannotExecute = 126
	ExitNotFound      = 127
)

// Streams are a command's standard streams.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// App is what a command line's commands share: the standard streams, the
// global options, and the engine, opened on first use.
type App struct {
	Streams
	root, runRoot, logLevel, storageDriver string

	// args are the command line's arguments, for a command run through
	// another binary (delegate).
	args []string
	// extra are the commands the binary adds (see Command), by name.
	extra map[string]Command

	eng *engine.Engine
}

// Root is the data root (--root).
func (a *App) Root() string { return a.root }

// Engine opens the engine over the data root, once.
func (a *App) Engine(ctx context.Context) (*engine.Engine, error) {
	if a.eng != nil {
		return a.eng, nil
	}
	e, err := engine.New(ctx, engine.Options{Root: a.root, RunRoot: a.runRoot, StorageDriver: a.storageDriver})
	if err != nil {
		return nil, err
	}
	a.eng = e
	return e, nil
}

// exitError carries a process exit status through cobra.
type exitError struct{ code int }

// ExitStatus is an error that makes Main return code, printing nothing.
func ExitStatus(code int) error { return exitError{code} }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Command is a top-level command that a binary adds to the command line:
// the names it answers to and how to make it. Package cli/imagetools
// provides the image tools' (imagetools.Commands).
type Command struct {
	Names []string
	Make  func(*App) *cobra.Command
}

// Main runs the berth command line with args (without the program name) and
// returns the process exit status. extra adds commands; an image tool it
// does not add runs through the berth-imagetools binary (see delegate).
func Main(ctx context.Context, args []string, s Streams, extra ...Command) int {
	// `berth [global flags] runtime ...` hands the rest to the OCI runtime
	// untouched: its flags are runc's (its --root is not berth's).
	if i := subcommandIndex(args); i >= 0 && args[i] == "runtime" {
		return runtimecli.Main(args[i+1:])
	}
	a := &App{Streams: s, args: args, extra: map[string]Command{}}
	for _, c := range extra {
		for _, n := range c.Names {
			a.extra[n] = c
		}
	}
	name := ""
	if i := subcommandIndex(args); i >= 0 {
		name = args[i]
	}
	root := newRoot(a, name)
	root.SetArgs(args)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(s.Err, "Error: %s\n", oneLine(err))
	if errors.Is(err, errdefs.ErrInvalidArgument) && strings.Contains(err.Error(), "unknown") {
		fmt.Fprintf(s.Err, "See 'berth --help'.\n")
	}
	// A container's process that could not be started: 126 or 127.
	var pe interface{ ExitCode() int }
	if errors.As(err, &pe) && pe.ExitCode() > 0 {
		return pe.ExitCode()
	}
	return ExitEngineError
}

// subcommandIndex finds the first argument that is not one of berth's
// global flags (or its value), or -1.
func subcommandIndex(args []string) int {
	withValue := map[string]bool{"--root": true, "--runroot": true, "--log-level": true, "--storage-driver": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case withValue[a]:
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return i
		}
	}
	return -1
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// newRoot makes the root command; only, if not empty, is the command the
// command line names.
func newRoot(a *App, only string) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth [OPTIONS] COMMAND",
		Short:         "A container engine: build, ship and run containers, daemonless",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       engine.Version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
				return errdefs.InvalidArgument("invalid --log-level %q: want debug, info, warn or error", a.logLevel)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(a.Err, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return errdefs.InvalidArgument("%v\nSee '%s --help'.", err, c.CommandPath())
	})
	root.SetVersionTemplate("berth version {{.Version}}\n")
	defRoot := os.Getenv("BERTH_ROOT")
	if defRoot == "" {
		defRoot = "/var/lib/berth"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.root, "root", defRoot, "Data root: images, layers, containers (env BERTH_ROOT)")
	pf.StringVar(&a.runRoot, "runroot", "/run/berth", "Root of runtime state that does not survive a reboot")
	pf.StringVar(&a.logLevel, "log-level", "warn", `Log level ("debug", "info", "warn", "error")`)
	pf.StringVar(&a.storageDriver, "storage-driver", os.Getenv("BERTH_STORAGE_DRIVER"), `Storage driver ("overlay", "native"; default: overlay when the kernel supports it)`)

	// Making a command registers its flags, which is most of what
	// building the whole tree costs (about 1 ms of every invocation): a
	// command line that names one command gets that one alone.
	var all []*cobra.Command
	for _, c := range commands() {
		if slices.Contains(c.names, only) {
			root.AddCommand(c.make(a))
			return root
		}
		all = append(all, c.make(a))
	}
	root.AddCommand(all...)
	return root
}

// command is a top-level command: the names it answers to (its own and its
// aliases) and how to make it.
type command struct {
	names []string
	make  func(*App) *cobra.Command
}

// commands lists every top-level command (TestCommandNames checks the
// names against what each one makes).
func commands() []command {
	named := func(name string, f func(*App, string) *cobra.Command) command {
		return command{[]string{name}, func(a *App) *cobra.Command { return f(a, name) }}
	}
	one := func(name string, f func(*App) *cobra.Command) command {
		return command{[]string{name}, f}
	}
	cmds := []command{
		one("version", newVersionCmd), one("info", newInfoCmd),
		named("images", newImagesCmd), one("image", newImageCmd), named("tag", newTagCmd), named("rmi", newRmiCmd),
		named("history", newHistoryCmd), named("import", newImportCmd), named("save", newSaveCmd),
		named("load", newLoadCmd), one("inspect", newInspectCmd),
		one("system", newSystemCmd),
		one("run", newRunCmd), named("create", newCreateCmd), one("start", newStartCmd), one("stop", newStopCmd),
		one("restart", newRestartCmd), one("kill", newKillCmd), {[]string{"rm", "remove"}, func(a *App) *cobra.Command { return newRmCmd(a, "rm") }}, one("wait", newWaitCmd),
		one("logs", newLogsCmd), named("ps", newPsCmd), one("rename", newRenameCmd),
		{[]string{"pause"}, func(a *App) *cobra.Command { return newPauseCmd(a, true) }},
		{[]string{"unpause"}, func(a *App) *cobra.Command { return newPauseCmd(a, false) }},
		one("attach", newAttachCmd), one("exec", newExecCmd), one("top", newTopCmd), one("stats", newStatsCmd),
		one("cp", newCpCmd), one("export", newExportCmd), one("diff", newDiffCmd), one("commit", newCommitCmd),
		one("container", newContainerCmd), one("volume", newVolumeCmd), one("_monitor", newMonitorCmd),
		one("network", newNetworkCmd), one("port", newPortCmd),
		one("runtime", newRuntimeCmd), one("builder", newBuilderCmd),
	}
	for _, name := range ImageTools() {
		cmds = append(cmds, command{[]string{name}, func(a *App) *cobra.Command { return a.tool(name) }})
	}
	return cmds
}

// noArgs, exactArgs and minArgs word argument errors as docker does;
// NoArgs, ExactArgs and MinArgs are the same for other packages' commands.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return errdefs.InvalidArgument("%q requires exactly %d argument(s).\nSee '%s --help'.", cmd.CommandPath(), n, cmd.CommandPath())
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return errdefs.InvalidArgument("%q requires at least %d argument(s).\nSee '%s --help'.", cmd.CommandPath(), n, cmd.CommandPath())
		}
		return nil
	}
}

// ExactArgs, MinArgs and NoArgs check a command's arguments, with Docker's
// words for a wrong count.
func ExactArgs(n int) cobra.PositionalArgs { return exactArgs(n) }

// MinArgs: see ExactArgs.
func MinArgs(n int) cobra.PositionalArgs { return minArgs(n) }

// NoArgs: see ExactArgs.
func NoArgs(cmd *cobra.Command, args []string) error { return noArgs(cmd, args) }

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return errdefs.InvalidArgument("%q accepts no arguments.\nSee '%s --help'.", cmd.CommandPath(), cmd.CommandPath())
	}
	return nil
}
