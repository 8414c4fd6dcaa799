package cli

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/cobra"
)

func (a *app) listCmd() *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := runtime.List(cmd.Context(), a.root)
			if err != nil {
				return err
			}
			var states []runtime.State
			for _, c := range cs {
				states = append(states, c.State(cmd.Context()))
			}
			switch {
			case quiet:
				for _, s := range states {
					fmt.Fprintln(a.stdout, s.ID)
				}
			case format == "json":
				if states == nil {
					states = []runtime.State{}
				}
				return a.printJSON(states)
			default:
				w := tabwriter.NewWriter(a.stdout, 12, 1, 3, ' ', 0)
				fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
				for _, s := range states {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
				}
				return w.Flush()
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print IDs only")
	return cmd
}

func (a *app) psCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] ID [ps options]",
		Short: "list a container's processes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			pids, err := c.Processes(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				if pids == nil {
					pids = []int{}
				}
				return a.printJSON(pids)
			}
			psArgs := []string{"-ef"}
			if len(args) > 1 {
				psArgs = args[1:]
			}
			out, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps: %w", err)
			}
			lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			pidCol := -1
			for i, h := range strings.Fields(lines[0]) {
				if h == "PID" {
					pidCol = i
				}
			}
			if pidCol < 0 {
				return fmt.Errorf("ps output has no PID column")
			}
			in := map[int]bool{}
			for _, p := range pids {
				in[p] = true
			}
			fmt.Fprintln(a.stdout, lines[0])
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				if len(f) > pidCol {
					if p, err := strconv.Atoi(f[pidCol]); err == nil && in[p] {
						fmt.Fprintln(a.stdout, l)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	return cmd
}

func (a *app) featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print what the runtime supports, as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			yes := true
			ns := []string{"cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"}
			f := features.Features{
				OCIVersionMin: "1.0.0",
				OCIVersionMax: specs.Version,
				Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
				MountOptions: []string{"ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async",
					"dirsync", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
					"strictatime", "nostrictatime", "bind", "rbind", "private", "rprivate", "shared", "rshared",
					"slave", "rslave", "unbindable", "runbindable", "remount"},
				Linux: &features.Linux{
					Namespaces:   ns,
					Capabilities: runtime.Capabilities(),
					Cgroup:       &features.Cgroup{V1: &yes, V2: &yes},
					Seccomp: &features.Seccomp{
						Enabled:   &yes,
						Actions:   []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"},
						Operators: []string{"SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"},
						Archs:     []string{"SCMP_ARCH_X86_64"},
					},
				},
			}
			return a.printJSON(f)
		},
	}
}

func (a *app) eventsCmd() *cobra.Command {
	var stats bool
	cmd := &cobra.Command{
		Use:   "events --stats ID",
		Short: "print a container's statistics (memory, cpu, pids, OOM kills) as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !stats {
				return fmt.Errorf("only --stats is supported")
			}
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			st, err := c.Stats(cmd.Context())
			if err != nil {
				return err
			}
			oom, _ := c.OOMKills(cmd.Context())
			return a.printJSON(map[string]any{"type": "stats", "id": c.ID(), "data": st, "oomKills": oom})
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print statistics once")
	return cmd
}

func (a *app) specCmd() *cobra.Command {
	var bundle string
	cmd := &cobra.Command{
		Use:   "spec",
		Short: "write a default config.json in the bundle",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := bundle + "/config.json"
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s already exists", p)
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			b := &app{stdout: f}
			return b.printJSON(runtime.DefaultSpec())
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory")
	return cmd
}
