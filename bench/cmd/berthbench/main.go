// Command berthbench prints berth's benchmark table: each row a job done by
// berth and by a peer side by side in the same run, with medians and the
// ratio berth/peer. bench/run.sh installs the peers, builds berth and runs
// it; see bench/README.md.
//
// Usage:
//
//	berthbench [-berth bin/berth] [-runs 10] [-rows REGEXP] [-data _out/bench] [-v]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/bench/harness"
	"github.com/berth-dev/berth/bench/rows"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "berthbench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	berth := flag.String("berth", "bin/berth", "berth `binary` to measure")
	runs := flag.Int("runs", 10, "timed runs per side of each row (at least 10 for the published table)")
	only := flag.String("rows", "", "run only rows whose name matches `regexp`")
	data := flag.String("data", "_out/bench", "`directory` for generated inputs")
	tmp := flag.String("tmp", "/tmp", "`directory` for each run's stores (short path: podman limits its length)")
	verbose := flag.Bool("v", false, "log every run to stderr")
	flag.Parse()
	if *runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		return fmt.Errorf("-rows: %w", err)
	}

	env := rows.Env{Berth: *berth, DataDir: *data}
	if v, err := exec.Command(*berth, "--help").CombinedOutput(); err != nil {
		env.BerthSkip = fmt.Sprintf("%s --help failed (%s)", *berth, firstLine(string(v), err))
	}

	fmt.Fprintf(os.Stderr, "generating inputs in %s\n", *data)
	all, err := rows.All(env)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := harness.Config{Runs: *runs, TempDir: *tmp}
	if *verbose {
		cfg.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	var results []harness.Result
	for _, r := range all {
		if !filter.MatchString(r.Name) || r.OptIn && *only == "" {
			continue
		}
		fmt.Fprintf(os.Stderr, "measuring %s\n", r.Name)
		results = append(results, harness.Run(ctx, cfg, r))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	printVersions(*berth)
	fmt.Println()
	return harness.PrintTable(os.Stdout, *runs, results)
}

// printVersions prints what was measured on what: the machine, berth and the
// peers.
func printVersions(berth string) {
	var uts syscall.Utsname
	kernel := "unknown"
	if err := syscall.Uname(&uts); err == nil {
		kernel = utsString(uts.Release[:])
	}
	fmt.Printf("machine: %d CPUs, kernel %s, %s\n", runtime.NumCPU(), kernel, runtime.Version())
	tools := [][]string{
		{berth, "--version"},
		{"podman", "--version"},
		{"crun", "--version"},
		{"runc", "--version"},
		{"skopeo", "--version"},
		{"buildah", "--version"},
		{"tar", "--version"},
	}
	for _, t := range tools {
		out, err := exec.Command(t[0], t[1:]...).CombinedOutput()
		fmt.Printf("  %-8s %s\n", filepath.Base(t[0]), firstLine(string(out), err))
	}
}

func firstLine(out string, err error) string {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if err != nil {
		if line == "" {
			return "unavailable: " + err.Error()
		}
		return "unavailable: " + line
	}
	return line
}

func utsString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}
