// Command inproc times berth's runtime called as a library, the way the
// engine's monitor calls it: Create (stdout and stderr on pipes), Start,
// wait for the process, Delete — each phase on its own, as medians, with
// `crun run` of the same bundle timed in the same loop for scale.
//
//	inproc -bundle DIR [-runs N] [-crun crun]
//
// The bundle's config.json is used as it is: copy an engine's bundle config
// (a container created with `berth create`, under the run root's
// containers/<id>/bundle) and point its root, bind sources and network
// namespace at things that live as long as the benchmark.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/berth-dev/berth/runtime"
	"golang.org/x/sys/unix"
)

func main() {
	bundle := flag.String("bundle", "", "OCI bundle whose process exits at once")
	runs := flag.Int("runs", 30, "timed runs")
	warm := flag.Int("warmup", 3, "untimed runs first")
	crun := flag.String("crun", "crun", "crun binary to compare with (empty: none)")
	root := flag.String("root", "/tmp/berth-inproc", "state root")
	raw := flag.Bool("raw", false, "print each timed run's phases (ms) instead of medians")
	flag.Parse()
	if *bundle == "" {
		fmt.Fprintln(os.Stderr, "usage: inproc -bundle DIR [-runs N]")
		os.Exit(2)
	}
	if *crun != "" {
		if _, err := exec.LookPath(*crun); err != nil {
			*crun = ""
		}
	}
	phases := []string{"create", "start", "wait", "delete", "total", "crun run"}
	times := map[string][]time.Duration{}
	ctx := context.Background()
	for i := 0; i < *warm+*runs; i++ {
		id := fmt.Sprintf("inproc-%d-%d", os.Getpid(), i)
		d, err := once(ctx, *root, id, *bundle)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var ct time.Duration
		if *crun != "" {
			t := time.Now()
			c := exec.Command(*crun, "--root", *root+"-crun", "run", "--bundle", *bundle, id)
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			if err := c.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "crun:", err)
				os.Exit(1)
			}
			ct = time.Since(t)
		}
		if i < *warm {
			continue
		}
		if *raw {
			fmt.Printf("%.3f %.3f %.3f %.3f %.3f %.3f\n", ms(d[0]), ms(d[1]), ms(d[2]), ms(d[3]), ms(d[4]), ms(ct))
		}
		for j, v := range d {
			times[phases[j]] = append(times[phases[j]], v)
		}
		if *crun != "" {
			times["crun run"] = append(times["crun run"], ct)
		}
	}
	for _, p := range phases {
		if *raw {
			break
		}
		v := times[p]
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		fmt.Printf("%-10s median %6.2f ms   p25 %6.2f   p75 %6.2f\n", p, ms(v[len(v)/2]), ms(v[len(v)/4]), ms(v[3*len(v)/4]))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// once runs one container as the engine does and returns how long create,
// start, wait and delete took, and their sum.
func once(ctx context.Context, root, id, bundle string) ([5]time.Duration, error) {
	var d [5]time.Duration
	outR, outW, err := os.Pipe()
	if err != nil {
		return d, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return d, err
	}
	go io.Copy(io.Discard, outR)
	go io.Copy(io.Discard, errR)
	t0 := time.Now()
	c, err := runtime.Create(ctx, id, bundle, runtime.Options{Root: root, Stdout: outW, Stderr: errW})
	outW.Close()
	errW.Close()
	if err != nil {
		return d, err
	}
	pid := c.Pid()
	c.Release()
	t1 := time.Now()
	l, err := runtime.Load(ctx, root, id)
	if err != nil {
		return d, err
	}
	if err := l.Start(ctx); err != nil {
		return d, err
	}
	t2 := time.Now()
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	t3 := time.Now()
	l, err = runtime.Load(ctx, root, id)
	if err != nil {
		return d, err
	}
	if err := l.Delete(ctx, true); err != nil {
		return d, err
	}
	t4 := time.Now()
	d = [5]time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3), t4.Sub(t0)}
	return d, nil
}
