package cli

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
	"github.com/berth-dev/berth/engine"
)

func newTopCmd(a *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			res, err := e.Top(cmd.Context(), args[0], args[1:])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.Out, 20, 1, 3, ' ', 0)
			fmt.Fprintln(tw, strings.Join(res.Titles, "\t"))
			for _, p := range res.Processes {
				fmt.Fprintln(tw, strings.Join(p, "\t"))
			}
			return tw.Flush()
		},
	}
	c.Flags().SetInterspersed(false) // what follows the container is ps's
	return c
}

// statsRow is what `stats --format` templates see.
type statsRow struct {
	Container, ID, Name, CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs string
}

// statsInterval is how far apart docker's stats samples are.
const statsInterval = time.Second

func newStatsCmd(a *App) *cobra.Command {
	var all, noStream, noTrunc bool
	var formatStr string
	c := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.Engine(ctx)
			if err != nil {
				return err
			}
			t, err := format.Parse(formatStr, "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}", map[string]string{
				"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
				"MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
			})
			if err != nil {
				return err
			}
			refs := args
			if len(refs) == 0 {
				list, err := e.Containers(ctx, engine.ContainerListOptions{All: all})
				if err != nil {
					return err
				}
				for _, c := range list {
					refs = append(refs, c.ID)
				}
			}
			prev := make([]*engine.Stats, len(refs))
			sample := func() ([]*engine.Stats, error) {
				cur := make([]*engine.Stats, len(refs))
				errs := make([]error, len(refs))
				var wg sync.WaitGroup
				for i, ref := range refs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						cur[i], errs[i] = e.ContainerStats(ctx, ref)
					}()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						return nil, err
					}
				}
				return cur, nil
			}
			render := func(cur []*engine.Stats) ([]byte, error) {
				var rows []any
				for i, s := range cur {
					rows = append(rows, statsRowOf(refs[i], prev[i], s, noTrunc))
				}
				var b bytes.Buffer
				err := t.Execute(&b, rows)
				return b.Bytes(), err
			}
			// CPU % needs two samples, even for one table.
			if prev, err = sample(); err != nil {
				return err
			}
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(statsInterval):
				}
				cur, err := sample()
				if err != nil {
					return err
				}
				out, err := render(cur)
				if err != nil {
					return err
				}
				if noStream {
					_, err := a.Out.Write(out)
					return err
				}
				// Redraw in place, as docker does.
				fmt.Fprint(a.Out, "\033[2J\033[H")
				a.Out.Write(out)
				prev = cur
				if ctx.Err() != nil {
					return nil
				}
			}
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	fl.StringVar(&formatStr, "format", "", "Format output using a custom template")
	return c
}

// statsRowOf formats one sample as docker's stats columns.
func statsRowOf(ref string, prev, s *engine.Stats, noTrunc bool) statsRow {
	dec := func(n uint64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
	return statsRow{
		Container: ref,
		ID:        shortID(s.ID, noTrunc),
		Name:      s.Name,
		CPUPerc:   fmt.Sprintf("%.2f%%", engine.CPUPercent(prev, s)),
		MemUsage:  units.BytesSize(float64(s.MemUsage)) + " / " + units.BytesSize(float64(s.MemLimit)),
		MemPerc:   fmt.Sprintf("%.2f%%", s.MemPercent()),
		NetIO:     dec(s.NetRx) + " / " + dec(s.NetTx),
		BlockIO:   dec(s.BlockRead) + " / " + dec(s.BlockWrite),
		PIDs:      strconv.FormatUint(s.PIDs, 10),
	}
}
