// Command pullpush measures berth pull and push against skopeo, side by
// side, on one local docker-registry (Debian's distribution 2.8) listening
// on loopback: pull into runnable storage (berth's snapshots; skopeo's
// containers-storage with the overlay driver) and push from local storage
// (berth's store; skopeo from an OCI layout directory), for a 200 MB
// single-layer image and for 20 layers of 5 MB. It prints the table of
// bench/harness: medians, MB/s and the ratio berth/peer. It asserts nothing.
//
// Usage (as root; bench/pullpush/run.sh builds berth and installs peers):
//
//	go run ./bench/pullpush -berth _out/bench/berth [-runs 10] [-rows REGEXP] [-v]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/berth-dev/berth/bench/harness"
	"github.com/berth-dev/berth/bench/imagegen"
	"github.com/berth-dev/berth/internal/testutil"
)

const mb = 1_000_000

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "pullpush: %v\n", err)
		os.Exit(1)
	}
}

type image struct {
	label   string
	spec    imagegen.Spec
	archive string // docker-archive file
	oci     string // OCI layout directory, skopeo's push source
	bytes   int64
}

func run() error {
	berth := flag.String("berth", "_out/bench/berth", "berth `binary` to measure")
	runs := flag.Int("runs", 10, "timed runs per side")
	only := flag.String("rows", "", "run only rows whose name matches `regexp`")
	data := flag.String("data", "_out/bench", "`directory` for generated inputs")
	tmp := flag.String("tmp", "/tmp", "`directory` for each run's stores")
	verbose := flag.Bool("v", false, "log every run to stderr")
	flag.Parse()
	filter, err := regexp.Compile(*only)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(*berth)
	if err != nil {
		return err
	}
	*berth = abs
	for _, c := range []string{"skopeo", "docker-registry", *berth} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s is needed: %w", c, err)
		}
	}

	imgs := []*image{
		{label: "200 MB, 1 layer", spec: imagegen.Spec{Ref: "localhost/bench/one-layer:200mb", Seed: 1, Layers: []imagegen.Layer{{Files: 200, FileSize: mb}}}, bytes: 200 * mb},
		{label: "20 x 5 MB layers", spec: imagegen.Spec{Ref: "localhost/bench/many-layers:20x5mb", Seed: 2, Layers: repeat(imagegen.Layer{Files: 5, FileSize: mb}, 20)}, bytes: 100 * mb},
	}
	for i, img := range imgs {
		img.archive = filepath.Join(*data, fmt.Sprintf("pullpush-%d.tar", i))
		if err := imagegen.WriteDockerArchive(img.archive, img.spec); err != nil {
			return err
		}
		if img.archive, err = filepath.Abs(img.archive); err != nil {
			return err
		}
		img.oci = filepath.Join(filepath.Dir(img.archive), fmt.Sprintf("pullpush-%d.oci", i))
		os.RemoveAll(img.oci)
		if out, err := exec.Command("skopeo", "copy", "-q", "docker-archive:"+img.archive, "oci:"+img.oci+":img").CombinedOutput(); err != nil {
			return fmt.Errorf("skopeo copy to OCI layout: %w\n%s", err, out)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, stopReg, err := startRegistry(ctx, *tmp)
	if err != nil {
		return err
	}
	defer stopReg()

	// Seed the registry: one repository per image, pushed by berth.
	seed, err := os.MkdirTemp(*tmp, "seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(seed)
	var rows []harness.Row
	// The push rows' registry of the current run, stopped at the end.
	var pushReg func()
	defer func() {
		if pushReg != nil {
			pushReg()
		}
	}()
	for i, img := range imgs {
		src := fmt.Sprintf("%s/bench/pull%d:v1", host, i)
		b := []string{"--root", filepath.Join(seed, "root"), "--runroot", filepath.Join(seed, "run")}
		if out, err := exec.Command(*berth, append(b, "load", "-i", img.archive)...).CombinedOutput(); err != nil {
			return fmt.Errorf("berth load: %w\n%s", err, out)
		}
		if out, err := exec.Command(*berth, append(b, "tag", img.spec.Ref, src)...).CombinedOutput(); err != nil {
			return fmt.Errorf("berth tag: %w\n%s", err, out)
		}
		if out, err := exec.Command(*berth, append(b, "push", "-q", src)...).CombinedOutput(); err != nil {
			return fmt.Errorf("berth push: %w\n%s", err, out)
		}
		rows = append(rows, pullRow(*berth, img, src), pushRow(*berth, *tmp, img, i, &pushReg))
	}

	cfg := harness.Config{Runs: *runs, TempDir: *tmp}
	if *verbose {
		cfg.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	var results []harness.Result
	for _, r := range rows {
		if !filter.MatchString(r.Name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "measuring %s\n", r.Name)
		results = append(results, harness.Run(ctx, cfg, r))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return harness.PrintTable(os.Stdout, *runs, results)
}

func repeat(l imagegen.Layer, n int) []imagegen.Layer {
	ls := make([]imagegen.Layer, n)
	for i := range ls {
		ls[i] = l
	}
	return ls
}

// pullRow: berth pull against skopeo copy into containers-storage, each
// run into a fresh, initialised store.
func pullRow(berth string, img *image, ref string) harness.Row {
	return harness.Row{
		Name:  "pull " + img.label,
		Bytes: img.bytes,
		Note: "pull from docker-registry on loopback into runnable storage (layers unpacked), " +
			"fresh initialised store each run; layers are uncompressed random bytes. " +
			"skopeo: copy docker:// to containers-storage: with the overlay driver",
		Berth: harness.Side{Name: "berth pull", Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			b := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run")}
			if out, err := exec.CommandContext(ctx, berth, append(b, "images")...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("berth images: %w\n%s", err, out)
			}
			return harness.Exec(nil, berth, append(b, "pull", "-q", ref)...), nil
		}},
		Peers: []harness.Side{{Name: "skopeo copy", Skip: podmanSkip(), Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			p, err := testutil.SetupPodman(dir, "runc")
			if err != nil {
				return nil, err
			}
			if out, err := p.Command(ctx, "images").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("podman images: %w\n%s", err, out)
			}
			dst := fmt.Sprintf("containers-storage:[overlay@%s+%s]%s", p.Root, p.RunRoot, ref)
			return harness.Exec(p.Env, "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+ref, dst), nil
		}}},
	}
}

// pushRow: berth push against skopeo copy from an OCI layout, each run to
// a registry of its own, started untimed, so that no blob is there yet and
// nothing can be mounted from elsewhere (skopeo's blob info cache would
// otherwise mount what earlier runs pushed).
func pushRow(berth, tmp string, img *image, i int, cur *func()) harness.Row {
	fresh := func(ctx context.Context) (string, error) {
		if *cur != nil {
			(*cur)()
			*cur = nil
		}
		host, stop, err := startRegistry(context.WithoutCancel(ctx), tmp)
		if err != nil {
			return "", err
		}
		*cur = stop
		return fmt.Sprintf("%s/bench/push%d:v1", host, i), nil
	}
	return harness.Row{
		Name:  "push " + img.label,
		Bytes: img.bytes,
		Note: "push to a fresh, empty docker-registry on loopback (started untimed for each run); " +
			"berth from its store (loaded untimed), skopeo from an OCI layout directory",
		Berth: harness.Side{Name: "berth push", Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			b := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run")}
			ref, err := fresh(ctx)
			if err != nil {
				return nil, err
			}
			if out, err := exec.CommandContext(ctx, berth, append(b, "load", "-i", img.archive)...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("berth load: %w\n%s", err, out)
			}
			if out, err := exec.CommandContext(ctx, berth, append(b, "tag", img.spec.Ref, ref)...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("berth tag: %w\n%s", err, out)
			}
			return harness.Exec(nil, berth, append(b, "push", "-q", ref)...), nil
		}},
		Peers: []harness.Side{{Name: "skopeo copy", Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			ref, err := fresh(ctx)
			if err != nil {
				return nil, err
			}
			return harness.Exec(nil, "skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:"+img.oci+":img", "docker://"+ref), nil
		}}},
	}
}

func podmanSkip() string {
	if err := testutil.PodmanAvailable(); err != nil {
		return err.Error()
	}
	return ""
}

// startRegistry runs docker-registry on a free loopback port.
func startRegistry(ctx context.Context, tmp string) (string, func(), error) {
	dir, err := os.MkdirTemp(tmp, "registry-")
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	host := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), host)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, "docker-registry", "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	}
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", host); err == nil {
			c.Close()
			return host, stop, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("docker-registry did not start on %s", host)
}
