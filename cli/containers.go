package cli

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/logs"
)

func newContainerCmd(a *App) *cobra.Command {
	c := &cobra.Command{Use: "container", Short: "Manage containers", Args: noArgs, RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	c.AddCommand(newCreateCmd(a, "create"), newStartCmd(a), newStopCmd(a), newRestartCmd(a), newKillCmd(a),
		newRmCmd(a, "rm"), newWaitCmd(a), newLogsCmd(a), newPsCmd(a, "ls"), newContainerInspectCmd(a),
		newRenameCmd(a), newPauseCmd(a, true), newPauseCmd(a, false), newAttachCmd(a), newContainerPruneCmd(a),
		newExecCmd(a), newTopCmd(a), newStatsCmd(a), newCpCmd(a), newExportCmd(a), newDiffCmd(a), newCommitCmd(a))
	return c
}

// eachContainer runs fn for each argument, printing the argument on
// success as docker does, and joins the errors.
func eachContainer(a *App, args []string, fn func(ref string) error) error {
	var errs []string
	for _, ref := range args {
		if err := fn(ref); err != nil {
			errs = append(errs, oneLine(err))
			continue
		}
		fmt.Fprintln(a.Out, ref)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\nError: "))
	}
	return nil
}

func newStartCmd(a *App) *cobra.Command {
	var attach, interactive bool
	c := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			if attach || interactive {
				if len(args) > 1 {
					return errdefs.InvalidArgument("you cannot start and attach multiple containers at once")
				}
				c, err := e.Container(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				s, restore := a.attachStreams(interactive, c.Config.Tty)
				defer restore()
				code, err := e.StartContainer(cmd.Context(), args[0], s)
				if err != nil {
					return err
				}
				if code != 0 {
					return exitError{code}
				}
				return nil
			}
			return eachContainer(a, args, func(ref string) error {
				_, err := e.StartContainer(cmd.Context(), ref, nil)
				return err
			})
		},
	}
	c.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	c.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	return c
}

func timeoutFlag(c *cobra.Command, t *int) {
	c.Flags().IntVarP(t, "time", "t", 10, "Seconds to wait before killing the container")
	c.Flags().IntVar(t, "timeout", 10, "Seconds to wait before killing the container")
	c.Flags().MarkHidden("timeout")
}

func newStopCmd(a *App) *cobra.Command {
	var t int
	var sig string
	c := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			var tp *int
			if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
				tp = &t
			}
			return eachContainer(a, args, func(ref string) error {
				return e.StopContainer(cmd.Context(), ref, tp, sig)
			})
		},
	}
	timeoutFlag(c, &t)
	c.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send to the container")
	return c
}

func newRestartCmd(a *App) *cobra.Command {
	var t int
	c := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			var tp *int
			if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
				tp = &t
			}
			return eachContainer(a, args, func(ref string) error {
				return e.RestartContainer(cmd.Context(), ref, tp)
			})
		},
	}
	timeoutFlag(c, &t)
	return c
}

func newKillCmd(a *App) *cobra.Command {
	var sig string
	c := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(a, args, func(ref string) error {
				return e.KillContainer(cmd.Context(), ref, sig)
			})
		},
	}
	c.Flags().StringVarP(&sig, "signal", "s", "KILL", "Signal to send to the container")
	return c
}

func newRmCmd(a *App, use string) *cobra.Command {
	var force, volumes bool
	c := &cobra.Command{
		Use:     use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Short:   "Remove one or more containers",
		Aliases: aliasesFor(use, "remove"),
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(a, args, func(ref string) error {
				return e.RemoveContainer(cmd.Context(), ref, engine.RemoveOptions{Force: force, Volumes: volumes})
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	c.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return c
}

func newWaitCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			var errs []string
			for _, ref := range args {
				code, err := e.WaitContainer(cmd.Context(), ref, "")
				if err != nil {
					errs = append(errs, oneLine(err))
					continue
				}
				fmt.Fprintln(a.Out, code)
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "\nError: "))
			}
			return nil
		},
	}
}

func newLogsCmd(a *App) *cobra.Command {
	var follow, timestamps bool
	var tail, since, until string
	c := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.LogsOptions{Follow: follow, Tail: -1}
			if tail != "all" && tail != "" {
				n, err := strconv.Atoi(tail)
				if err != nil {
					return errdefs.InvalidArgument("invalid value for \"tail\": %s", tail)
				}
				opts.Tail = n
			}
			var err error
			if opts.Since, err = parseTime(since); err != nil {
				return err
			}
			if opts.Until, err = parseTime(until); err != nil {
				return err
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.Logs(cmd.Context(), args[0], opts, func(en logs.Entry) error {
				w := a.Out
				if en.Stream == "stderr" {
					w = a.Err
				}
				if timestamps {
					fmt.Fprint(w, en.Time.Format(time.RFC3339Nano)+" ")
				}
				_, err := fmt.Fprint(w, en.Log)
				return err
			})
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	fl.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	fl.StringVar(&since, "since", "", "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)")
	fl.StringVar(&until, "until", "", "Show logs before a timestamp or relative")
	return c
}

// parseTime reads --since/--until: a duration ago, RFC 3339, or Unix seconds.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, l := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Unix(0, int64(f*1e9)), nil
	}
	return time.Time{}, errdefs.InvalidArgument("invalid time value %q: want a duration (10m), a date-time or Unix seconds", s)
}

// psRow is what `ps --format` templates see.
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Size, Names, Labels, Mounts, Networks string
}

func newPsCmd(a *App, use string) *cobra.Command {
	var all, quiet, latest, noTrunc, size bool
	var last int
	var filterArgs []string
	var formatStr string
	c := &cobra.Command{
		Use:     use + " [OPTIONS]",
		Short:   "List containers",
		Aliases: aliasesFor(use, "list", "ps"),
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "id", "name", "label", "status", "exited", "ancestor")
			if err != nil {
				return err
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			list, err := e.Containers(cmd.Context(), engine.ContainerListOptions{All: all, Latest: latest, Last: last, Filters: f})
			if err != nil {
				return err
			}
			if quiet {
				for _, c := range list {
					fmt.Fprintln(a.Out, shortID(c.ID, noTrunc))
				}
				return nil
			}
			def := "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			if size {
				def += "\t{{.Size}}"
			}
			t, err := format.Parse(formatStr, def, map[string]string{
				"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED", "CreatedAt": "CREATED AT",
				"Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE", "State": "STATE", "Labels": "LABELS",
				"Mounts": "MOUNTS", "Networks": "NETWORKS",
			})
			if err != nil {
				return err
			}
			now := time.Now()
			var rows []any
			for _, c := range list {
				rows = append(rows, psRowOf(c, now, noTrunc))
			}
			return t.Execute(a.Out, rows)
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	fl.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	fl.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	fl.StringArrayVarP(&filterArgs, "filter", "f", nil, "Filter output based on conditions provided")
	fl.StringVar(&formatStr, "format", "", "Format output using a custom template")
	return c
}

func psRowOf(c *container.Container, now time.Time, noTrunc bool) psRow {
	cmd := strings.Join(append([]string{c.Path}, c.Args...), " ")
	if !noTrunc && len(cmd) > 20 {
		cmd = cmd[:19] + "…"
	}
	img := c.Config.Image
	if img == "" {
		img = format.TruncateID(c.Image.String())
	}
	var labels []string
	for k, v := range c.Config.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	var mounts []string
	for _, m := range c.Mounts {
		n := m.Name
		if n == "" {
			n = m.Source
		}
		mounts = append(mounts, n)
	}
	return psRow{
		ID:         shortID(c.ID, noTrunc),
		Image:      img,
		Command:    strconv.Quote(cmd),
		CreatedAt:  c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: format.Since(c.Created, now),
		Ports:      portsString(c),
		State:      c.State.Status,
		Status:     statusString(c, now),
		Size:       "0B",
		Names:      c.DisplayName(),
		Labels:     strings.Join(labels, ","),
		Mounts:     strings.Join(mounts, ","),
		Networks:   c.HostConfig.NetworkMode,
	}
}

// statusString is docker's STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago".
func statusString(c *container.Container, now time.Time) string {
	s := c.State
	switch {
	case s.Running && s.Paused:
		return "Up " + humanDur(now.Sub(s.StartedAt)) + " (Paused)"
	case s.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, humanDur(now.Sub(s.FinishedAt)))
	case s.Running:
		return "Up " + humanDur(now.Sub(s.StartedAt))
	case s.Status == container.StatusCreated:
		return "Created"
	case s.Status == container.StatusRemoving:
		return "Removal In Progress"
	case s.Status == container.StatusDead:
		return "Dead"
	}
	if s.FinishedAt.IsZero() {
		return "Created"
	}
	return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, humanDur(now.Sub(s.FinishedAt)))
}

func humanDur(d time.Duration) string {
	return strings.TrimSuffix(format.Since(time.Now().Add(-d), time.Now()), " ago")
}

func portsString(c *container.Container) string {
	var out []string
	for p, bs := range c.NetworkSettings.Ports {
		for _, b := range bs {
			ip := b.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			out = append(out, fmt.Sprintf("%s:%s->%s", ip, b.HostPort, p))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func newContainerInspectCmd(a *App) *cobra.Command {
	var formatStr string
	var size bool
	c := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspectObjects(a, cmd, args, formatStr, "container")
		},
	}
	c.Flags().StringVarP(&formatStr, "format", "f", "", "Format output using a custom template")
	c.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes")
	return c
}

// inspectObjects prints containers, images or volumes by name; with typ
// empty, a name is looked up as a container first, then as an image, then
// as a volume, as docker inspect does.
func inspectObjects(a *App, cmd *cobra.Command, names []string, formatStr, typ string) error {
	e, err := a.Engine(cmd.Context())
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var objs []any
	var errs []string
	for _, n := range names {
		var obj any
		var err error = errdefs.NotFound("No such object: %s", n)
		if typ == "" || typ == "container" {
			if c, cerr := e.Container(ctx, n); cerr == nil {
				obj, err = c, nil
			} else if typ == "container" {
				err = cerr
			}
		}
		if obj == nil && (typ == "" || typ == "image") {
			if ii, ierr := e.InspectImage(ctx, n); ierr == nil {
				obj, err = ii, nil
			} else if typ == "image" {
				err = ierr
			}
		}
		if obj == nil && (typ == "" || typ == "volume") {
			if v, verr := e.Volume(ctx, n); verr == nil {
				obj, err = v, nil
			} else if typ == "volume" {
				err = verr
			}
		}
		if err != nil {
			errs = append(errs, oneLine(err))
			continue
		}
		objs = append(objs, obj)
	}
	if len(objs) > 0 || len(errs) == 0 {
		if err := format.Inspect(a.Out, objs, formatStr); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return errdefs.NotFound("%s", strings.Join(errs, "\nError: "))
	}
	return nil
}

func newRenameCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.RenameContainer(cmd.Context(), args[0], args[1])
		},
	}
}

func newPauseCmd(a *App, pause bool) *cobra.Command {
	use, short := "pause", "Pause all processes within one or more containers"
	if !pause {
		use, short = "unpause", "Unpause all processes within one or more containers"
	}
	return &cobra.Command{
		Use:   use + " CONTAINER [CONTAINER...]",
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return eachContainer(a, args, func(ref string) error {
				return e.PauseContainer(cmd.Context(), ref, pause)
			})
		},
	}
}

func newAttachCmd(a *App) *cobra.Command {
	var noStdin bool
	c := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			c, err := e.Container(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			s, restore := a.attachStreams(!noStdin, c.Config.Tty)
			defer restore()
			code, err := e.AttachContainer(cmd.Context(), args[0], s)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	c.Flags().Bool("sig-proxy", true, "Proxy all received signals to the process")
	return c
}

func newContainerPruneCmd(a *App) *cobra.Command {
	var force bool
	var filterArgs []string
	c := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "until", "label")
			if err != nil {
				return err
			}
			if !force && !confirm(a, "WARNING! This will remove all stopped containers.") {
				return nil
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			ids, reclaimed, err := e.PruneContainers(cmd.Context(), f)
			if err != nil {
				return err
			}
			printDeletedNames(a, "Deleted Containers:", ids)
			fmt.Fprintf(a.Out, "Total reclaimed space: %s\n", format.Size(reclaimed))
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	c.Flags().StringArrayVar(&filterArgs, "filter", nil, "Provide filter values")
	return c
}

// newMonitorCmd is the hidden command the container monitor runs as.
func newMonitorCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:    "_monitor",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.ServeMonitor(cmd.Context(), os.NewFile(3, "ready"))
		},
	}
}

func newPortCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			c, err := e.Container(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			want := ""
			if len(args) == 2 {
				want = args[1]
				if !strings.Contains(want, "/") {
					want += "/tcp"
				}
			}
			var keys []string
			for k := range c.NetworkSettings.Ports {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			found := false
			for _, k := range keys {
				if want != "" && k != want {
					continue
				}
				for _, b := range c.NetworkSettings.Ports[k] {
					found = true
					if want != "" {
						fmt.Fprintf(a.Out, "%s:%s\n", b.HostIP, b.HostPort)
					} else {
						fmt.Fprintf(a.Out, "%s -> %s:%s\n", k, b.HostIP, b.HostPort)
					}
				}
			}
			if want != "" && !found {
				return errdefs.NotFound("No public port '%s' published for %s", want, c.DisplayName())
			}
			return nil
		},
	}
}
