package harness

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// PrintTable writes results as a table, one line per peer of each row: the
// row, berth's median, the peer, its median, and the ratio of berth's median
// time to the peer's (below 1 means berth is faster). Rows with a byte count
// show throughput beside each median. Under the table, a legend repeats each
// row's note.
func PrintTable(w io.Writer, runs int, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ROW\tBERTH\tPEER\tPEER MEDIAN\tBERTH/PEER\n")
	for _, r := range results {
		for i, p := range r.Peers {
			name, berth := r.Row.Name, cell(r.Row, r.Berth)
			if i > 0 {
				name, berth = "", `"`
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, berth, p.Side.Name, cell(r.Row, p), ratio(r.Berth, p))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nMedians of %d runs per side, sides interleaved, after one untimed warm-up run each.\n", runs)
	prevNote := ""
	for _, r := range results {
		switch {
		case r.Row.Note == "":
		case r.Row.Note == prevNote:
			fmt.Fprintf(w, "- %s: the same\n", r.Row.Name)
		default:
			fmt.Fprintf(w, "- %s: %s\n", r.Row.Name, r.Row.Note)
		}
		prevNote = r.Row.Note
		if r.Row.Runs > 0 {
			fmt.Fprintf(w, "  (%d run(s) per side, no warm-up)\n", r.Row.Runs)
		}
		if r.Row.Report != nil {
			for _, l := range r.Row.Report() {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
		for _, m := range append([]Measure{r.Berth}, r.Peers...) {
			if m.Err != nil {
				fmt.Fprintf(w, "  %s: not measured: %s\n", m.Side.Name, indent(m.Err.Error(), maxErrLines))
			}
		}
	}
	return nil
}

// cell formats one side's median, with throughput if the row has a size.
func cell(row Row, m Measure) string {
	if m.Err != nil {
		return "n/a"
	}
	med := m.Median()
	s := formatDuration(med)
	if row.Bytes > 0 && med > 0 {
		s += fmt.Sprintf(" (%.0f MB/s)", float64(row.Bytes)/1e6/med.Seconds())
	}
	return s
}

func ratio(berth, peer Measure) string {
	if berth.Err != nil || peer.Err != nil || peer.Median() == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", berth.Median().Seconds()/peer.Median().Seconds())
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3f s", d.Seconds())
}

// maxErrLines bounds how much of a failed side's error (often a command's
// output) the legend repeats.
const maxErrLines = 6

// indent returns the first n lines of s, the lines after the first indented
// to sit under it in the legend.
func indent(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n    ")
}
