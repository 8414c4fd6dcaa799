package cli

import (
	"github.com/spf13/cobra"

	runtimecli "github.com/berth-dev/berth/runtime/cli"
)

// newRuntimeCmd is `berth runtime ...`: berth's OCI runtime with runc's
// command line (create, start, state, kill, delete, run, exec, list, ps,
// pause, resume, features, spec), the same as the berth-runtime binary.
// Its flags are runc's own, parsed by the runtime, not by cobra: Main
// hands `berth [global flags] runtime ...` over before cobra sees it, so
// this command is what `berth help` lists.
func newRuntimeCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:                "runtime [RUNC OPTIONS] COMMAND [ARGS...]",
		Short:              "berth's OCI runtime, with runc's command line",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := runtimecli.Main(args); code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
}
