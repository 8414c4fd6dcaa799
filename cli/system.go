package cli

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/cli/format"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/image"
)

func newVersionCmd(a *App) *cobra.Command {
	var formatStr string
	c := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the berth version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := struct {
				Version, GoVersion, Os, Arch string
			}{engine.Version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH}
			if formatStr != "" {
				return format.Inspect(a.Out, []any{v}, formatStr)
			}
			fmt.Fprintf(a.Out, "Version:      %s\nGo version:   %s\nOS/Arch:      %s/%s\n", v.Version, v.GoVersion, v.Os, v.Arch)
			return nil
		},
	}
	c.Flags().StringVarP(&formatStr, "format", "f", "", "Format output using a custom template")
	return c
}

func newInfoCmd(a *App) *cobra.Command {
	var formatStr string
	c := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			info, err := e.Info(cmd.Context())
			if err != nil {
				return err
			}
			if formatStr != "" {
				return format.Inspect(a.Out, []any{info}, formatStr)
			}
			fmt.Fprintf(a.Out, `Server:
 Containers: %d
 Images: %d
 Server Version: %s
 Storage Driver: %s
 Cgroup Driver: %s
 Cgroup Version: %s
 Kernel Version: %s
 Operating System: %s
 OSType: %s
 Architecture: %s
 CPUs: %d
 Total Memory: %s
 Berth Root Dir: %s
 Run Root Dir: %s
`, info.Containers, info.Images, info.ServerVersion, info.Driver, info.CgroupDriver, info.CgroupVersion,
				info.KernelVersion, info.OperatingSystem, info.OSType, info.Architecture, info.NCPU,
				format.Size(info.MemTotal), info.DockerRootDir, info.RunRoot)
			return nil
		},
	}
	c.Flags().StringVarP(&formatStr, "format", "f", "", "Format output using a custom template")
	return c
}

func newSystemCmd(a *App) *cobra.Command {
	c := &cobra.Command{Use: "system", Short: "Manage berth", Args: noArgs, RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	c.AddCommand(newDfCmd(a), newSystemPruneCmd(a), newInfoCmd(a), newSystemResetCmd(a))
	return c
}

func newDfCmd(a *App) *cobra.Command {
	var verbose bool
	var formatStr string
	c := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show berth disk usage",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			du, err := e.DiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			bc, err := e.BuildCacheDiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			type row struct{ Type, TotalCount, Active, Size, Reclaimable string }
			pct := func(part, whole int64) string {
				if whole == 0 {
					return format.Size(part)
				}
				return fmt.Sprintf("%s (%d%%)", format.Size(part), part*100/whole)
			}
			rows := []any{
				row{"Images", fmt.Sprint(len(du.Images)), fmt.Sprint(du.ActiveImages), format.Size(du.LayersSize), pct(du.Reclaimable, du.LayersSize)},
				row{"Containers", fmt.Sprint(du.Containers), fmt.Sprint(du.RunningContainers), format.Size(du.ContainersSize), pct(du.ContainersReclaimable, du.ContainersSize)},
				row{"Local Volumes", fmt.Sprint(du.Volumes), fmt.Sprint(du.VolumesInUse), format.Size(du.VolumesSize), pct(du.VolumesReclaimable, du.VolumesSize)},
				row{"Build Cache", fmt.Sprint(bc.Records), "0", format.Size(bc.Size), format.Size(bc.Size)},
			}
			t, err := format.Parse(formatStr, "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
				map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"})
			if err != nil {
				return err
			}
			if !verbose {
				return t.Execute(a.Out, rows)
			}
			fmt.Fprintln(a.Out, "Images space usage:")
			fmt.Fprintln(a.Out)
			tw := tabwriter.NewWriter(a.Out, 10, 1, 3, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS")
			for _, u := range du.Images {
				repo, tag := "<none>", "<none>"
				if len(u.RepoTags) > 0 {
					repo, tag = splitTag(u.RepoTags[0])
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", repo, tag, format.TruncateID(u.ID.String()),
					format.Since(u.Created, time.Now()), format.Size(u.Size), format.Size(u.SharedSize), format.Size(u.UniqueSize), u.Containers)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	c.Flags().StringVar(&formatStr, "format", "", "Format output using a custom template")
	return c
}

// newSystemResetCmd is podman's system reset: everything of the data root
// and the run root goes, networks on the host included.
func newSystemResetCmd(a *App) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "reset [OPTIONS]",
		Short: "Reset berth's storage to its initial state",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			warn := "WARNING! This will remove:\n  - all containers\n  - all networks, their bridges and firewall rules\n" +
				"  - all images and build cache\n  - all volumes\n"
			if !force && !confirm(a, warn) {
				return nil
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.Reset(cmd.Context())
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return c
}

func newSystemPruneCmd(a *App) *cobra.Command {
	var all, force, volumes bool
	var filterArgs []string
	c := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "until", "label")
			if err != nil {
				return err
			}
			warn := "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n"
			if volumes {
				warn += "  - all anonymous volumes not used by at least one container\n"
			}
			if all {
				warn += "  - all images without at least one container associated to them\n"
			} else {
				warn += "  - all dangling images\n"
			}
			warn += "  - unused build cache\n"
			if !force && !confirm(a, warn) {
				return nil
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := e.SystemPrune(cmd.Context(), all, volumes, f)
			if err != nil {
				return err
			}
			printDeletedNames(a, "Deleted Containers:", rep.Containers)
			printDeletedNames(a, "Deleted Networks:", rep.Networks)
			printDeletedNames(a, "Deleted Volumes:", rep.Volumes)
			if len(rep.Images) > 0 {
				fmt.Fprintln(a.Out, "Deleted Images:")
				printDeletes(a.Out, rep.Images)
				fmt.Fprintln(a.Out)
			}
			if rep.BuildCache > 0 {
				fmt.Fprintf(a.Out, "Deleted build cache objects: %d\n\n", rep.BuildCache)
			}
			fmt.Fprintf(a.Out, "Total reclaimed space: %s\n", format.Size(rep.SpaceReclaimed))
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	c.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	c.Flags().StringArrayVar(&filterArgs, "filter", nil, "Provide filter values (e.g. \"label=<key>=<value>\")")
	return c
}

func splitTag(t string) (string, string) {
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == ':' {
			return t[:i], t[i+1:]
		}
		if t[i] == '/' {
			break
		}
	}
	return t, "<none>"
}

func goarch() string { return goruntime.GOARCH }

func checkTag(ref string) (string, error) {
	t, err := image.ParseTag(ref)
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

func dirOf(p string) string { return filepath.Dir(p) }

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
