// Command startbench times OCI runtimes side by side on the two paths of a
// container's start: `run` of a process that exits at once, and create +
// start + delete. Runs are interleaved (one of each runtime in turn), so a
// noisy neighbour slows all alike; it prints medians and berth's ratios.
//
//	startbench -bundle DIR -runs N berth-runtime=PATH crun=crun runc=runc
//
// bench/runtime/bench.sh prepares the bundle and calls it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

type runtime struct{ name, path string }

func main() {
	bundle := flag.String("bundle", "", "OCI bundle whose process exits at once")
	runs := flag.Int("runs", 30, "timed runs per runtime and path")
	warm := flag.Int("warmup", 3, "untimed runs first")
	flag.Parse()
	var rts []runtime
	for _, a := range flag.Args() {
		name, path, ok := strings.Cut(a, "=")
		if !ok {
			name, path = a, a
		}
		if _, err := exec.LookPath(path); err != nil {
			fmt.Fprintf(os.Stderr, "skip %s: %v\n", name, err)
			continue
		}
		rts = append(rts, runtime{name, path})
	}
	if *bundle == "" || len(rts) == 0 {
		fmt.Fprintln(os.Stderr, "usage: startbench -bundle DIR [-runs N] name=path ...")
		os.Exit(2)
	}
	cmd := func(rt runtime, args ...string) error {
		c := exec.Command(rt.path, args...)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("%s %s: %w", rt.name, strings.Join(args, " "), err)
		}
		return nil
	}
	paths := []struct {
		name string
		do   func(rt runtime, id string) error
	}{
		{"run /bin/true", func(rt runtime, id string) error {
			return cmd(rt, "run", "--bundle", *bundle, id)
		}},
		{"create+start+delete", func(rt runtime, id string) error {
			if err := cmd(rt, "create", "--bundle", *bundle, id); err != nil {
				return err
			}
			if err := cmd(rt, "start", id); err != nil {
				return err
			}
			return cmd(rt, "delete", "--force", id)
		}},
	}
	times := map[string][]time.Duration{}
	for i := 0; i < *warm+*runs; i++ {
		for _, p := range paths {
			for _, rt := range rts {
				id := fmt.Sprintf("startbench-%s-%d", rt.name, os.Getpid())
				t := time.Now()
				if err := p.do(rt, id); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				if i >= *warm {
					times[p.name+"\x00"+rt.name] = append(times[p.name+"\x00"+rt.name], time.Since(t))
				}
			}
		}
	}
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	fmt.Printf("%-22s", fmt.Sprintf("median of %d (ms)", *runs))
	for _, rt := range rts {
		fmt.Printf(" %14s", rt.name)
	}
	for _, rt := range rts[1:] {
		fmt.Printf(" %12s", rts[0].name[:min(5, len(rts[0].name))]+"/"+rt.name)
	}
	fmt.Println()
	for _, p := range paths {
		fmt.Printf("%-22s", p.name)
		m := map[string]float64{}
		for _, rt := range rts {
			m[rt.name] = median(times[p.name+"\x00"+rt.name])
			fmt.Printf(" %14.1f", m[rt.name])
		}
		for _, rt := range rts[1:] {
			fmt.Printf(" %11.2fx", m[rts[0].name]/m[rt.name])
		}
		fmt.Println()
	}
}
