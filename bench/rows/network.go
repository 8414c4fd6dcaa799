package rows

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/berth-dev/berth/bench/harness"
	"github.com/berth-dev/berth/internal/testutil"
)

// The networking rows (issue 5): what a bridge network with a published
// port adds to a container's start over --network none, and requests and
// bytes through a published port from the host, berth against podman on
// its default network backend. All traffic goes to 127.0.0.1.

func bridgeStartRow(env Env) (harness.Row, error) {
	bb, err := busyboxInputs(env)
	return bridgeStart(env, bb), err
}

func requestRateRow(env Env) (harness.Row, error) {
	root, err := filepath.Abs(filepath.Join(env.DataDir, "..", ".."))
	if err != nil {
		return harness.Row{}, err
	}
	if _, err := busyboxInputs(env); err != nil { // runs hack/mkimages.sh
		return harness.Row{}, err
	}
	return requestRate(env, filepath.Join(root, "_out", "images", "hello-rootfs.tar")), nil
}

func publishedBytesRow(env Env) (harness.Row, error) {
	bb, err := busyboxInputs(env)
	if err != nil {
		return harness.Row{}, err
	}
	big := filepath.Join(env.DataDir, "www", "100mb")
	if err := writeRandomFile(big, 100*mb); err != nil {
		return harness.Row{}, err
	}
	return publishedBytes(env, bb, big), nil
}

// netEnv is the environment of berth's sides: a default bridge and subnet
// of their own, so that they meet neither another berth root's berth0 nor
// podman's podman0 (both 10.88.0.0/16 by default).
func netEnv() []string {
	return append(os.Environ(), "BERTH_BRIDGE=bbench0", "BERTH_BRIDGE_SUBNET=10.236.0.0/24")
}

func (b berthStore) execEnv(args ...string) harness.Timed {
	return harness.Exec(netEnv(), b.bin, b.args(args...)...)
}

// recorder keeps each side's timed durations, the warm-up run dropped, for
// the rows' own legend lines (differences of medians, request rates).
type recorder struct {
	mu sync.Mutex
	d  map[string][]time.Duration
}

func (r *recorder) wrap(side string, work harness.Timed) harness.Timed {
	return func(ctx context.Context) error {
		start := time.Now()
		err := work(ctx)
		if err == nil {
			r.mu.Lock()
			if r.d == nil {
				r.d = map[string][]time.Duration{}
			}
			r.d[side] = append(r.d[side], time.Since(start))
			r.mu.Unlock()
		}
		return err
	}
}

// median is the median of a side's runs after the first (the warm-up).
func (r *recorder) median(side string) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ds := r.d[side]
	if len(ds) < 2 {
		return 0, false
	}
	ds = slices.Clone(ds[1:])
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2], true
	}
	return (ds[n/2-1] + ds[n/2]) / 2, true
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// berthPrepared is berth's side of a row: a fresh store with the image
// imported and the monitor running (a first container ran, untimed); prep
// makes the work to time.
func berthPrepared(env Env, name, tar, image string, prep func(ctx context.Context, b berthStore) (harness.Timed, error), teardown func(ctx context.Context, b berthStore)) harness.Side {
	return harness.Side{
		Name: name,
		Skip: env.BerthSkip,
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			b := berthStore{bin: env.Berth, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
			cmd := `CMD ["sh"]`
			if image == "hello" {
				cmd = `CMD ["/hello"]`
			}
			for _, args := range [][]string{{"import", "-c", cmd, tar, image}, {"run", "--rm", "--network", "none", image}} {
				if err := b.execEnv(args...)(ctx); err != nil {
					return nil, err
				}
			}
			return prep(ctx, b)
		},
		Teardown: func(ctx context.Context, dir string) error {
			b := berthStore{bin: env.Berth, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
			if teardown != nil {
				teardown(ctx, b)
			}
			return stopBerth(env.Berth)(ctx, dir)
		},
	}
}

// podmanNetSubnet is the subnet of the network of podman's own that the
// published-port rows run podman's container on: podman's default network,
// 10.88.0.0/16, is also berth0's default, and a berth0 left on the host
// (by a store made with the default names) took podman's traffic, failing
// the rows. Same backend (netavark), a subnet nothing else uses, as
// berth's sides have (netEnv).
const podmanNetSubnet = "10.235.0.0/24"

// podmanNet returns podman's global flags for the run's own network
// configuration, and makes the network "pbench" there.
func podmanNet(ctx context.Context, p *testutil.Podman) ([]string, error) {
	flags := []string{"--network-config-dir", filepath.Join(p.Dir, "networks")}
	args := append(slices.Clone(flags), "network", "create", "--subnet", podmanNetSubnet, "pbench")
	if err := harness.Exec(p.Env, p.Bin, p.Args(args...)...)(ctx); err != nil {
		return nil, err
	}
	return flags, nil
}

// podmanPrepared is podman's side: fresh storage (runc, cgroupfs) with the
// image imported.
func podmanPrepared(name, tar, image string, prep func(ctx context.Context, p *testutil.Podman) (harness.Timed, error), teardown func(ctx context.Context, p *testutil.Podman)) harness.Side {
	var p *testutil.Podman
	s := harness.Side{
		Name: name,
		Setup: func(ctx context.Context, dir string) (harness.Timed, error) {
			var err error
			if p, err = testutil.SetupPodman(dir, "runc"); err != nil {
				return nil, err
			}
			cmd := `CMD ["sh"]`
			if image == "hello" {
				cmd = `CMD ["/hello"]`
			}
			if err := harness.Exec(p.Env, p.Bin, p.Args("import", "-q", "-c", cmd, tar, image)...)(ctx); err != nil {
				return nil, err
			}
			return prep(ctx, p)
		},
		Teardown: func(ctx context.Context, dir string) error {
			if teardown != nil && p != nil {
				teardown(ctx, p)
			}
			return nil
		},
	}
	if err := testutil.PodmanAvailable(); err != nil {
		s.Skip = err.Error()
	}
	return s
}

const bridgeStartNote = "`run --rm busybox true` with a bridge network and one published port " +
	"(`-p 127.0.0.1::80`, a free host port) against the same with `--network none`, in a store with busybox imported " +
	"(berth: its monitor already running; own bridge and subnet; podman: runc, cgroupfs, its default network backend). " +
	"berth's bridge stays once made, as docker0 does (an untimed first run makes it); podman's netavark makes and removes podman0 around a lone container. " +
	"Every side waits 200 ms, untimed, before its timed run, for the kernel's asynchronous teardown of the runs before (network namespaces, bridges). " +
	"Target (issue 5): berth's bridge start at most 5 ms over its none start. Run with -runs 20 for the published table"

// settle waits, untimed, for the kernel's asynchronous work of the runs
// before (a network namespace's teardown, cleanup_net, holds the RTNL lock
// while it deletes the namespace's veth; podman's run before deletes its
// bridge too): it fell in the next run's timed start, whichever side's.
func settle() { time.Sleep(200 * time.Millisecond) }

// bridgeStart is the start latency a bridge network with one published
// port adds over --network none.
func bridgeStart(env Env, bb busybox) harness.Row {
	rec := &recorder{}
	run := func(side string, extra ...string) harness.Side {
		args := append(append([]string{"run", "--rm"}, extra...), "busybox", "true")
		return berthPrepared(env, side, bb.tar, "busybox", func(ctx context.Context, b berthStore) (harness.Timed, error) {
			// Once untimed: the store's network takes the bridge over (it
			// stays on the host from the last run's store, as docker0 does).
			if err := b.execEnv(args...)(ctx); err != nil {
				return nil, err
			}
			settle()
			return rec.wrap(side, b.execEnv(args...)), nil
		}, nil)
	}
	prun := func(side string, extra ...string) harness.Side {
		args := append(append([]string{"run", "--rm"}, extra...), "busybox", "true")
		return podmanPrepared(side, bb.tar, "busybox", func(_ context.Context, p *testutil.Podman) (harness.Timed, error) {
			settle()
			return rec.wrap(side, harness.Exec(p.Env, p.Bin, p.Args(args...)...)), nil
		}, nil)
	}
	const (
		bNone   = "berth run --rm --network none"
		pBridge = "podman run --rm -p 127.0.0.1::80"
		pNone   = "podman run --rm --network none"
	)
	berth := run("berth run --rm -p 127.0.0.1::80", "-p", "127.0.0.1::80")
	return harness.Row{
		Name:  "start: bridge + 1 published port",
		Note:  bridgeStartNote,
		Berth: berth,
		Peers: []harness.Side{run(bNone, "--network", "none"), prun(pBridge, "-p", "127.0.0.1::80"), prun(pNone, "--network", "none")},
		Report: func() []string {
			var lines []string
			bb, ok1 := rec.median(berth.Name)
			bn, ok2 := rec.median(bNone)
			pb, ok3 := rec.median(pBridge)
			pn, ok4 := rec.median(pNone)
			if ok1 && ok2 {
				lines = append(lines, fmt.Sprintf("berth: bridge + port adds %s over none (%s vs %s; target: at most 5 ms)", ms(bb-bn), ms(bb), ms(bn)))
			}
			if ok3 && ok4 {
				lines = append(lines, fmt.Sprintf("podman: bridge + port adds %s over none (%s vs %s)", ms(pb-pn), ms(pb), ms(pn)))
			}
			if ok1 && ok2 && ok3 && ok4 && pb > pn {
				lines = append(lines, fmt.Sprintf("extra start, berth/podman: %.2f", float64(bb-bn)/float64(pb-pn)))
			}
			return lines
		},
	}
}

// freeLoopbackPort returns a TCP port of 127.0.0.1 free now.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP fetches url until it answers 200, at most 100 times.
func waitHTTP(ctx context.Context, url string) error {
	c := &http.Client{Timeout: time.Second}
	var last error
	for range 100 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s never answered: %w", url, last)
}

const (
	requests    = 20000
	connections = 8
)

// hammer sends n GETs to url over conns keep-alive connections and checks
// every answer.
func hammer(ctx context.Context, url string, n, conns int) error {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		share := n / conns
		if i < n%conns {
			share++
		}
		wg.Go(func() {
			for range share {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("GET %s: %s", url, resp.Status)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

const requestRateNote = "a Go client on the host sends 20,000 GETs over 8 keep-alive connections to 127.0.0.1:PORT, " +
	"published (`-p 127.0.0.1:PORT:8080`) to the hello image's HTTP server (`/hello -listen :8080`, a few dozen bytes per answer) " +
	"in a container on a bridge network of each engine's (berth: its default network, on a bridge and subnet of the bench's own; podman: a network of the run's own, " +
	"10.235.0.0/24, netavark as by default); the container is started and answering before the timed part"

// requestRate is requests per second through a published port.
func requestRate(env Env, hello string) harness.Row {
	rec := &recorder{}
	const bName, pName = "berth: 20k GETs via -p", "podman: 20k GETs via -p"
	berth := berthPrepared(env, bName, hello, "hello", func(ctx context.Context, b berthStore) (harness.Timed, error) {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		if err := b.execEnv("run", "-d", "--name", "web", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "hello", "/hello", "-listen", ":8080")(ctx); err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		if err := waitHTTP(ctx, url); err != nil {
			return nil, err
		}
		return rec.wrap(bName, func(ctx context.Context) error { return hammer(ctx, url, requests, connections) }), nil
	}, func(ctx context.Context, b berthStore) { b.execEnv("rm", "-f", "web")(ctx) })
	podman := podmanPrepared(pName, hello, "hello", func(ctx context.Context, p *testutil.Podman) (harness.Timed, error) {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		flags, err := podmanNet(ctx, p)
		if err != nil {
			return nil, err
		}
		args := append(flags, "run", "-d", "--name", "web", "--network", "pbench", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "hello", "/hello", "-listen", ":8080")
		if err := harness.Exec(p.Env, p.Bin, p.Args(args...)...)(ctx); err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		if err := waitHTTP(ctx, url); err != nil {
			return nil, err
		}
		return rec.wrap(pName, func(ctx context.Context) error { return hammer(ctx, url, requests, connections) }), nil
	}, func(ctx context.Context, p *testutil.Podman) {
		harness.Exec(p.Env, p.Bin, p.Args("--network-config-dir", filepath.Join(p.Dir, "networks"), "rm", "-f", "-t", "0", "web")...)(ctx)
	})
	return harness.Row{
		Name:  "published port: 20k HTTP requests",
		Note:  requestRateNote,
		Berth: berth,
		Peers: []harness.Side{podman},
		Report: func() []string {
			var lines []string
			for _, s := range []string{bName, pName} {
				if d, ok := rec.median(s); ok {
					lines = append(lines, fmt.Sprintf("%s: %.0f requests/s", s, float64(requests)/d.Seconds()))
				}
			}
			return lines
		},
	}
}

const publishedBytesNote = "one GET of a 100 MB file (random bytes, in the page cache) through 127.0.0.1:PORT, published " +
	"to busybox httpd in a container on a bridge network of each engine's (as above), the file bind-mounted read-only; MB/s of body"

// publishedBytes is a bulk download through a published port.
func publishedBytes(env Env, bb busybox, file string) harness.Row {
	dir := filepath.Dir(file)
	get := func(url string) harness.Timed {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil && (resp.StatusCode != http.StatusOK || n != 100*mb) {
				err = fmt.Errorf("GET %s: %s, %d bytes", url, resp.Status, n)
			}
			return err
		}
	}
	serve := []string{"httpd", "-f", "-p", "8080", "-h", "/www"}
	berth := berthPrepared(env, "berth: GET 100 MB via -p", bb.tar, "busybox", func(ctx context.Context, b berthStore) (harness.Timed, error) {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		args := append([]string{"run", "-d", "--name", "web", "-v", dir + ":/www:ro", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "busybox"}, serve...)
		if err := b.execEnv(args...)(ctx); err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		if err := waitHTTP(ctx, url+"small"); err != nil {
			return nil, err
		}
		return get(url + filepath.Base(file)), nil
	}, func(ctx context.Context, b berthStore) { b.execEnv("rm", "-f", "web")(ctx) })
	podman := podmanPrepared("podman: GET 100 MB via -p", bb.tar, "busybox", func(ctx context.Context, p *testutil.Podman) (harness.Timed, error) {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		flags, err := podmanNet(ctx, p)
		if err != nil {
			return nil, err
		}
		args := append(append(flags, "run", "-d", "--name", "web", "--network", "pbench", "-v", dir+":/www:ro", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "busybox"), serve...)
		if err := harness.Exec(p.Env, p.Bin, p.Args(args...)...)(ctx); err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		if err := waitHTTP(ctx, url+"small"); err != nil {
			return nil, err
		}
		return get(url + filepath.Base(file)), nil
	}, func(ctx context.Context, p *testutil.Podman) {
		harness.Exec(p.Env, p.Bin, p.Args("--network-config-dir", filepath.Join(p.Dir, "networks"), "rm", "-f", "-t", "0", "web")...)(ctx)
	})
	return harness.Row{
		Name:  "published port: GET 100 MB",
		Note:  publishedBytesNote,
		Bytes: 100 * mb,
		Berth: berth,
		Peers: []harness.Side{podman},
	}
}

// writeRandomFile writes size random bytes to path unless it has that size
// already, and a small file "small" beside it.
func writeRandomFile(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "small"), []byte("ok\n"), 0o644); err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() == size {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
