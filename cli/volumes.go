package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
	"github.com/berth-dev/berth/filters"
)

func newVolumeCmd(a *App) *cobra.Command {
	c := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: noArgs, RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	var labels []string
	create := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			name, _ := cmd.Flags().GetString("name")
			if len(args) == 1 {
				name = args[0]
			}
			l := map[string]string{}
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				l[k] = v
			}
			v, err := e.CreateVolume(cmd.Context(), name, l, nil)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.Out, v.Name)
			return nil
		},
	}
	create.Flags().StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	create.Flags().String("name", "", "Specify volume name")
	create.Flags().StringP("driver", "d", "local", "Specify volume driver name")

	var quiet bool
	var filterArgs []string
	var formatStr string
	ls := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "name", "label", "dangling", "driver")
			if err != nil {
				return err
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			vols, err := e.Volumes(cmd.Context(), f)
			if err != nil {
				return err
			}
			if quiet {
				for _, v := range vols {
					fmt.Fprintln(a.Out, v.Name)
				}
				return nil
			}
			t, err := format.Parse(formatStr, "table {{.Driver}}\t{{.Name}}", map[string]string{"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT"})
			if err != nil {
				return err
			}
			var rows []any
			for _, v := range vols {
				rows = append(rows, v)
			}
			return t.Execute(a.Out, rows)
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	ls.Flags().StringArrayVarP(&filterArgs, "filter", "f", nil, "Provide filter values")
	ls.Flags().StringVar(&formatStr, "format", "", "Format output using a custom template")

	var inspectFormat string
	inspect := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspectObjects(a, cmd, args, inspectFormat, "volume")
		},
	}
	inspect.Flags().StringVarP(&inspectFormat, "format", "f", "", "Format output using a custom template")

	var force bool
	rm := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(a, args, func(name string) error {
				return e.RemoveVolume(cmd.Context(), name, force)
			})
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")

	var pruneAll, pruneForce bool
	var pruneFilters []string
	prune := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(pruneFilters, "label")
			if err != nil {
				return err
			}
			if !pruneForce && !confirm(a, "WARNING! This will remove anonymous local volumes not used by at least one container.") {
				return nil
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			removed, reclaimed, err := e.PruneVolumes(cmd.Context(), pruneAll, f)
			if err != nil {
				return err
			}
			printDeletedNames(a, "Deleted Volumes:", removed)
			fmt.Fprintf(a.Out, "Total reclaimed space: %s\n", format.Size(reclaimed))
			return nil
		},
	}
	prune.Flags().BoolVarP(&pruneAll, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	prune.Flags().BoolVarP(&pruneForce, "force", "f", false, "Do not prompt for confirmation")
	prune.Flags().StringArrayVar(&pruneFilters, "filter", nil, "Provide filter values")

	c.AddCommand(create, ls, inspect, rm, prune)
	return c
}
