// Package cli owns berth's OCI runtime command line, compatible with runc's
// and crun's (create, start, state, kill, delete, run, exec, list, ps,
// pause, resume, features), so that other engines can drive berth's
// runtime. Main is the whole program: cmd/berth-runtime and `berth runtime`
// both call it.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/runtime"
	"github.com/spf13/cobra"
)

// Version is the runtime's version.
const Version = "0.1.0"

// app is one invocation's global flags and outputs.
type app struct {
	root      string
	logPath   string
	logFormat string
	debug     bool
	systemd   bool
	stdout    io.Writer
	stderr    io.Writer
}

// exitError carries an exit status out of a command.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the runtime's command line with args (without the program
// name) and returns the exit status.
func Main(args []string) int {
	a := &app{stdout: os.Stdout, stderr: os.Stderr}
	cmd := a.command()
	cmd.SetArgs(args)
	cmd.SetOut(a.stdout)
	cmd.SetErr(a.stderr)
	err := cmd.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	a.logError(err)
	var pe interface{ ExitCode() int }
	if errors.As(err, &pe) && pe.ExitCode() > 0 {
		return pe.ExitCode()
	}
	return 1
}

// logError reports err on one line on stderr and, if --log is given, in
// the log file in the format runc uses.
func (a *app) logError(err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(a.stderr, "berth-runtime: %s\n", msg)
	if a.logPath == "" {
		return
	}
	f, ferr := os.OpenFile(a.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if ferr != nil {
		return
	}
	defer f.Close()
	if a.logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": "error", "msg": msg, "time": time.Now().UTC().Format(time.RFC3339Nano)})
		fmt.Fprintf(f, "%s\n", b)
		return
	}
	fmt.Fprintf(f, "time=%q level=error msg=%q\n", time.Now().UTC().Format(time.RFC3339Nano), msg)
}

func (a *app) command() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth-runtime",
		Short:         "berth's OCI container runtime",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate(fmt.Sprintf("berth-runtime version %s\nspec: %s\n", Version, "1.2.1"))
	f := root.PersistentFlags()
	f.StringVar(&a.root, "root", runtime.DefaultRoot, "directory for container state")
	f.StringVar(&a.logPath, "log", "", "log file for errors")
	f.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&a.debug, "debug", false, "debug logging (accepted)")
	f.BoolVar(&a.systemd, "systemd-cgroup", false, "cgroupsPath is slice:prefix:name (accepted; laid out on the cgroup filesystem)")
	var ignored string
	f.StringVar(&ignored, "criu", "", "accepted for compatibility")
	f.StringVar(&ignored, "rootless", "", "accepted for compatibility")
	_ = f.MarkHidden("criu")
	_ = f.MarkHidden("rootless")
	root.AddCommand(
		a.createCmd(), a.runCmd(), a.startCmd(), a.stateCmd(), a.killCmd(), a.deleteCmd(),
		a.listCmd(), a.psCmd(), a.pauseCmd(), a.resumeCmd(), a.featuresCmd(), a.execCmd(),
		a.eventsCmd(), a.specCmd(),
	)
	return root
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) load(cmd *cobra.Command, id string) (*runtime.Container, error) {
	return runtime.Load(cmd.Context(), a.root, id)
}
