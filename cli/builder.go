package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
)

func newBuilderCmd(a *App) *cobra.Command {
	c := &cobra.Command{Use: "builder", Short: "Manage builds", Args: noArgs, RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	var force, all bool
	prune := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove build cache",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			n, reclaimed, err := e.PruneBuildCache(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "Deleted build cache objects: %d\nTotal:\t%s\n", n, format.Size(reclaimed))
			return nil
		},
	}
	prune.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	prune.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused build cache, not just dangling ones")
	c.AddCommand(prune)
	return c
}
