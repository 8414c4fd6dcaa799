package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/network"
)

func newNetworkCmd(a *App) *cobra.Command {
	c := &cobra.Command{Use: "network", Short: "Manage networks", Args: noArgs, RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	c.AddCommand(newNetworkCreateCmd(a), newNetworkLsCmd(a), newNetworkInspectCmd(a), newNetworkRmCmd(a),
		newNetworkPruneCmd(a), newNetworkConnectCmd(a), newNetworkDisconnectCmd(a), newNetworkDNSServeCmd())
	return c
}

func newNetworkCreateCmd(a *App) *cobra.Command {
	var o network.CreateOptions
	var labels []string
	c := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			o.Labels = map[string]string{}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				if k == "" {
					return errdefs.InvalidArgument("invalid label %q", l)
				}
				o.Labels[k] = v
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			n, err := e.NetworkCreate(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.Out, n.ID)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVarP(&o.Driver, "driver", "d", "bridge", "Driver to manage the Network")
	fl.StringVar(&o.Subnet, "subnet", "", "Subnet in CIDR format that represents a network segment")
	fl.StringVar(&o.Gateway, "gateway", "", "IPv4 Gateway for the master subnet")
	fl.BoolVar(&o.Internal, "internal", false, "Restrict external access to the network")
	fl.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	return c
}

// networkRow is what `network ls --format` templates see.
type networkRow struct {
	ID, Name, Driver, Scope, IPv6, Internal, Labels, CreatedAt string
}

func newNetworkLsCmd(a *App) *cobra.Command {
	var quiet, noTrunc bool
	var filterArgs []string
	var formatStr string
	c := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "driver", "id", "label", "name", "scope", "type", "dangling")
			if err != nil {
				return err
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			list, err := e.NetworkList(cmd.Context(), f)
			if err != nil {
				return err
			}
			if quiet {
				for _, n := range list {
					fmt.Fprintln(a.Out, shortID(n.ID, noTrunc))
				}
				return nil
			}
			t, err := format.Parse(formatStr, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", map[string]string{
				"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
				"IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
			})
			if err != nil {
				return err
			}
			var rows []any
			for _, n := range list {
				var ls []string
				for k, v := range n.Labels {
					ls = append(ls, k+"="+v)
				}
				rows = append(rows, networkRow{
					ID: shortID(n.ID, noTrunc), Name: n.Name, Driver: n.Driver, Scope: n.Scope,
					IPv6: fmt.Sprint(n.EnableIPv6), Internal: fmt.Sprint(n.Internal), Labels: strings.Join(ls, ","),
					CreatedAt: n.Created.Local().Format("2006-01-02 15:04:05.999999999 -0700 MST"),
				})
			}
			return t.Execute(a.Out, rows)
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	fl.StringArrayVarP(&filterArgs, "filter", "f", nil, "Provide filter values (e.g. 'driver=bridge')")
	fl.StringVar(&formatStr, "format", "", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
	return c
}

func newNetworkInspectCmd(a *App) *cobra.Command {
	var formatStr string
	c := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			var objs []any
			var errs []string
			for _, ref := range args {
				n, err := e.NetworkInspect(cmd.Context(), ref)
				if err != nil {
					errs = append(errs, oneLine(err))
					continue
				}
				objs = append(objs, n)
			}
			if len(objs) > 0 || len(errs) == 0 {
				if err := format.Inspect(a.Out, objs, formatStr); err != nil {
					return err
				}
			}
			if len(errs) > 0 {
				return errdefs.NotFound("%s", strings.Join(errs, "\n"))
			}
			return nil
		},
	}
	c.Flags().StringVarP(&formatStr, "format", "f", "", "Format output using a custom template")
	return c
}

func newNetworkRmCmd(a *App) *cobra.Command {
	c := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			var errs []string
			for _, ref := range args {
				if err := e.NetworkRemove(cmd.Context(), ref); err != nil {
					errs = append(errs, oneLine(err))
					continue
				}
				fmt.Fprintln(a.Out, ref)
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "\n"))
			}
			return nil
		},
	}
	return c
}

func newNetworkPruneCmd(a *App) *cobra.Command {
	var force bool
	var filterArgs []string
	c := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "label", "until")
			if err != nil {
				return err
			}
			if !force && !confirm(a, "WARNING! This will remove all custom networks not used by at least one container.") {
				return nil
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			removed, err := e.NetworkPrune(cmd.Context(), f)
			printDeletedNames(a, "Deleted Networks:", removed)
			return err
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	c.Flags().StringArrayVar(&filterArgs, "filter", nil, "Provide filter values (e.g. 'until=<timestamp>')")
	return c
}

func newNetworkConnectCmd(a *App) *cobra.Command {
	var o engine.NetworkConnectOptions
	c := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.NetworkConnect(cmd.Context(), args[0], args[1], o)
		},
	}
	c.Flags().StringVar(&o.IP, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	c.Flags().StringSliceVar(&o.Aliases, "alias", nil, "Add network-scoped alias for the container")
	return c
}

func newNetworkDisconnectCmd(a *App) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.NetworkDisconnect(cmd.Context(), args[0], args[1], force)
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return c
}

// newNetworkDNSServeCmd is the resolver process of one user network, which
// the network package starts on demand: hidden, not for users.
func newNetworkDNSServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "dns-serve STATE-DIR",
		Hidden: true,
		Args:   exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return network.ServeDNSMain(ctx, args)
		},
	}
}
