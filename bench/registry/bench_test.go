// Package registry compares berth's registry with Debian's docker-registry
// (distribution 2.8) on loopback. Both run as processes of their own with
// filesystem storage under a fresh directory (fresh for each row); skopeo
// is the client of the push and pull rows, a Go client in this process of
// the manifest row:
//
//   - push and pull of a 200 MB single-layer image (MB/s);
//   - push and pull of an image of 20 layers of 5 MB (MB/s);
//   - 50 clients fetching one manifest by tag as fast as they can
//     (requests per second and p99 latency).
//
// Each row runs -runs times per side (default 10), sides interleaved, and
// prints medians and the ratio berth/distribution (above 1: berth is
// faster; for p99, below 1 is). The skopeo rows also print skopeo's copies
// to and from a registry that does nothing (nothingRegistry: skopeo's own
// cost, which bounds what any registry can reach with it) and each
// registry's CPU time a copy. It asserts nothing. Run it with:
//
//	BERTH_BENCH=1 go test -v -timeout 30m -run Compare ./bench/registry/
//
// Storage. By default skopeo's OCI layouts (the sources of pushes, the
// destinations of pulls, and what the nothing registry serves) are on a
// tmpfs the bench mounts for itself, and so is both registries' storage
// (another tmpfs; the same for both): what is timed is then the clients'
// and the servers' work, not a disk's (on this project's test VM, an ext4
// without a journal whose fsyncs and block allocation are slow and vary).
// A tmpfs makes fsync free, so berth's three fsyncs a blob cost
// nothing there (distribution makes none). BERTH_BENCH_STORAGE=disk puts
// both registries' storage in a directory under os.TempDir() instead (the
// file system a registry would store on), BERTH_BENCH_CLIENT_STORAGE=disk
// the layouts; the bench prints which storage each side got, with its
// file system from /proc/self/mountinfo. Without the right to mount (not
// root), tmpfs means a directory under /dev/shm. A tmpfs holds what it
// stores in memory: a row keeps every image it pushed until it ends, ~4.5
// GB for the 200 MB rows at 10 runs (both registries), so a machine with
// less memory to spare wants BERTH_BENCH_STORAGE=disk or fewer runs.
//
// The go-single and go-layers rows push and pull the same images with a Go
// client in this process instead of skopeo (go_test.go): skopeo's own work (it
// reads, hashes and on a pull writes, hashes again and fsyncs every byte,
// with go1.19's sha256, which does not use the CPU's SHA extensions)
// bounds its rows, and these show what the registries themselves do.
//
// Knobs: BERTH_BENCH_RUNS (10), BERTH_BENCH_ROWS (a comma list of single,
// layers, go-single, go-layers, manifests; default all),
// BERTH_BENCH_LOAD_SECS (seconds of each manifest run, default 2),
// BERTH_BENCH_STORAGE and BERTH_BENCH_CLIENT_STORAGE (tmpfs or disk,
// default tmpfs), BERTH_BIN (the berth binary; built when unset). The
// berth process inherits the environment: BERTH_REGISTRY_PPROF=127.0.0.1:6060
// makes it serve Go's profiles there while the bench runs.
package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// side is a registry under test: its name, address, and process (0 for
// one in this process).
type side struct {
	name, addr string
	pid        int
}

// cpuTime returns the CPU time (user and system) process pid has used, or
// 0 when it cannot tell (pid 0, or no /proc).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// utime and stime are fields 14 and 15, in clock ticks (100 a second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestCompare(t *testing.T) {
	if os.Getenv("BERTH_BENCH") == "" {
		t.Skip("set BERTH_BENCH=1 to run the registry comparison")
	}
	for _, c := range []string{"skopeo", "docker-registry"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed (apt-get install skopeo docker-registry)", c)
		}
	}
	runs := envInt("BERTH_BENCH_RUNS", 10)
	rows := os.Getenv("BERTH_BENCH_ROWS")
	if rows == "" {
		rows = "single,layers,go-single,go-layers,manifests"
	}
	bin := berthBinary(t)
	client := storageFor(t, "BERTH_BENCH_CLIENT_STORAGE", "client")
	server := storageFor(t, "BERTH_BENCH_STORAGE", "registries")
	out, _ := exec.Command("docker-registry", "--version").CombinedOutput()
	t.Logf("peer: %s; client: skopeo; %d runs per side, interleaved; medians", strings.TrimSpace(string(out)), runs)
	t.Logf("storage: skopeo's OCI layouts on %s; both registries' storage on %s", client.desc, server.desc)

	for _, row := range strings.Split(rows, ",") {
		// Each row has registries of its own, on fresh storage, removed
		// when the row ends (so a tmpfs holds one row's images at most).
		t.Run(row, func(t *testing.T) {
			bAddr, bPid := startBerth(t, bin, server.sub(t, "berth"))
			dAddr, dPid := startDistribution(t, server.sub(t, "distribution"))
			sides := []side{{"berth", bAddr, bPid}, {"distribution", dAddr, dPid}}
			switch row {
			case "single":
				pushPull(t, sides, client, runs, "200 MB, 1 layer", "single", 1, 200<<20)
			case "layers":
				pushPull(t, sides, client, runs, "20 x 5 MB layers", "layers", 20, 5<<20)
			case "go-single":
				goPushPull(t, sides, runs, "200 MB, 1 layer", 1, 200<<20)
			case "go-layers":
				goPushPull(t, sides, runs, "20 x 5 MB layers", 20, 5<<20)
			case "manifests":
				manifests(t, sides, client, runs, time.Duration(envInt("BERTH_BENCH_LOAD_SECS", 2))*time.Second)
			default:
				t.Fatalf("unknown row %q", row)
			}
		})
	}
}

// pushPull measures skopeo copy of an image of n layers of size bytes into
// each registry (a fresh image each run, so every layer is new to the
// registry), then from it into a fresh OCI layout; and the same copies to
// and from a registry that does nothing (nothingRegistry), skopeo's own
// cost.
func pushPull(t *testing.T, sides []side, client benchStorage, runs int, label, repo string, n, size int) {
	mb := float64(n*size) / (1 << 20)
	push := map[string][]time.Duration{}
	pull := map[string][]time.Duration{}
	// The registries' own CPU time, summed over the runs: unlike the wall
	// time it hardly moves with what else the machine is doing.
	pushCPU := map[string]time.Duration{}
	pullCPU := map[string]time.Duration{}
	nothing := startNothing(t)
	skopeo := func(args ...string) time.Duration {
		start := time.Now()
		if out, err := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	for i := 0; i <= runs; i++ { // run 0 warms up
		src := layout(t, client.sub(t, "src"), n, size)
		order := sides
		if i%2 == 1 {
			order = []side{sides[1], sides[0]}
		}
		nothing.serve(src)
		for _, s := range append(order, side{"nothing", nothing.addr, 0}) {
			ref := fmt.Sprintf("docker://%s/bench/%s:%d", s.addr, repo, i)
			c0 := cpuTime(s.pid)
			d := skopeo("copy", "--dest-tls-verify=false", "--dest-compress=false", "oci:"+src+":latest", ref)
			c1 := cpuTime(s.pid)
			dst := client.sub(t, "dst")
			syncFS()
			c2 := cpuTime(s.pid)
			p := skopeo("copy", "--src-tls-verify=false", ref, "oci:"+dst+":latest")
			c3 := cpuTime(s.pid)
			os.RemoveAll(dst)
			if i > 0 {
				push[s.name] = append(push[s.name], d)
				pull[s.name] = append(pull[s.name], p)
				pushCPU[s.name] += c1 - c0
				pullCPU[s.name] += c3 - c2
			}
		}
		os.RemoveAll(src)
	}
	for _, op := range []struct {
		name string
		m    map[string][]time.Duration
		cpu  map[string]time.Duration
	}{{"push", push, pushCPU}, {"pull", pull, pullCPU}} {
		b, d, z := median(op.m["berth"]), median(op.m["distribution"]), median(op.m["nothing"])
		t.Logf("%-4s %-17s berth %6.0f MB/s (%v)  distribution %6.0f MB/s (%v)  berth/distribution %.2f×",
			op.name, label, mb/b.Seconds(), b.Round(time.Millisecond), mb/d.Seconds(), d.Round(time.Millisecond), d.Seconds()/b.Seconds())
		t.Logf("     %-17s skopeo alone %6.0f MB/s (%v): no registry can beat %.2f× distribution with this client",
			"", mb/z.Seconds(), z.Round(time.Millisecond), d.Seconds()/z.Seconds())
		bc, dc := op.cpu["berth"]/time.Duration(runs), op.cpu["distribution"]/time.Duration(runs)
		t.Logf("     %-17s registry CPU a copy: berth %v  distribution %v  distribution/berth %.2f×",
			"", bc, dc, dc.Seconds()/max(bc.Seconds(), 0.001))
	}
}

// nothingRegistry is the registry that does nothing, the third side of the
// skopeo rows: it drops what is pushed (no storing, no hashing, no fsync)
// and serves every pull from the files of the OCI layout being copied (the
// page cache, through a buffer, as berth serves its own to clients on
// loopback). skopeo's copies to
// and from it are what skopeo costs alone: a bound on what any registry
// can reach on these rows.
type nothingRegistry struct {
	addr string
	mu   sync.Mutex
	dir  string // the layout pulls are served from
}

func startNothing(t *testing.T) *nothingRegistry {
	n := &nothingRegistry{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: n}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	n.addr = l.Addr().String()
	return n
}

// serve makes pulls get the image of the OCI layout dir.
func (n *nothingRegistry) serve(dir string) {
	n.mu.Lock()
	n.dir = dir
	n.mu.Unlock()
}

func (n *nothingRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Blob bytes go straight to io.Discard (a 32 KiB buffer; reading a
	// 200 MB body into memory would cost several copies of it); only a
	// manifest is kept, for its digest.
	var body []byte
	if strings.Contains(r.URL.Path, "/manifests/") {
		body, _ = io.ReadAll(r.Body)
	} else {
		io.Copy(io.Discard, r.Body)
	}
	n.mu.Lock()
	dir := n.dir
	n.mu.Unlock()
	p, hd := r.URL.Path, w.Header()
	switch {
	case p == "/v2/":
		w.WriteHeader(http.StatusOK)
	case strings.HasSuffix(p, "/blobs/uploads/"): // POST
		hd.Set("Location", p+"x")
		w.WriteHeader(http.StatusAccepted)
	case strings.Contains(p, "/blobs/uploads/") && r.Method == http.MethodPut:
		hd.Set("Docker-Content-Digest", r.URL.Query().Get("digest"))
		w.WriteHeader(http.StatusCreated)
	case strings.Contains(p, "/blobs/uploads/"): // PATCH
		hd.Set("Location", p)
		w.WriteHeader(http.StatusAccepted)
	case strings.Contains(p, "/manifests/") && r.Method == http.MethodPut:
		hd.Set("Docker-Content-Digest", digest.FromBytes(body).String())
		w.WriteHeader(http.StatusCreated)
	case strings.Contains(p, "/manifests/"):
		var idx struct {
			Manifests []struct {
				MediaType string
				Digest    digest.Digest
			}
		}
		b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
		if json.Unmarshal(b, &idx) != nil || len(idx.Manifests) == 0 {
			http.NotFound(w, r)
			return
		}
		m := idx.Manifests[0]
		hd.Set("Content-Type", m.MediaType)
		hd.Set("Docker-Content-Digest", m.Digest.String())
		http.ServeFile(w, r, filepath.Join(dir, "blobs", "sha256", m.Digest.Encoded()))
	case strings.Contains(p, "/blobs/") && r.Method == http.MethodGet:
		d, err := digest.Parse(p[strings.LastIndexByte(p, '/')+1:])
		if err != nil {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(filepath.Join(dir, "blobs", "sha256", d.Encoded()))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Docker-Content-Digest", d.String())
		hd.Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		// Through a buffer, not sendfile(2): on loopback a client
		// receives what write(2) sends faster (see berth's copyingWriter).
		io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{f}, make([]byte, 256<<10))
	default: // HEAD of a blob: never there, so every push uploads
		http.NotFound(w, r)
	}
}

// manifests measures 50 clients, each on a connection of its own, fetching
// one manifest by tag in a loop for dur, per run.
func manifests(t *testing.T, sides []side, client benchStorage, runs int, dur time.Duration) {
	const clients = 50
	src := layout(t, client.sub(t, "src"), 1, 1<<10)
	for _, s := range sides {
		if out, err := exec.Command("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "oci:"+src+":latest",
			"docker://"+s.addr+"/bench/manifest:latest").CombinedOutput(); err != nil {
			t.Fatalf("skopeo: %v\n%s", err, out)
		}
	}
	rps := map[string][]float64{}
	p99 := map[string][]time.Duration{}
	for i := 0; i <= runs; i++ {
		order := sides
		if i%2 == 1 {
			order = []side{sides[1], sides[0]}
		}
		for _, s := range order {
			r, p := load(t, s.addr, clients, dur)
			if i > 0 {
				rps[s.name] = append(rps[s.name], r)
				p99[s.name] = append(p99[s.name], p)
			}
		}
	}
	slices.Sort(rps["berth"])
	slices.Sort(rps["distribution"])
	br, dr := rps["berth"][runs/2], rps["distribution"][runs/2]
	bp, dp := median(p99["berth"]), median(p99["distribution"])
	t.Logf("manifest GET, %d clients, %v a run: berth %.0f req/s p99 %v  distribution %.0f req/s p99 %v  req/s berth/distribution %.2f×  p99 berth/distribution %.2f",
		clients, dur, br, bp.Round(10*time.Microsecond), dr, dp.Round(10*time.Microsecond), br/dr, bp.Seconds()/dp.Seconds())
}

// load runs clients loops of GET manifest for dur and returns the requests
// per second and the 99th percentile latency.
func load(t *testing.T, addr string, clients int, dur time.Duration) (float64, time.Duration) {
	url := "http://" + addr + "/v2/bench/manifest/manifests/latest"
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var failed error
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			defer c.CloseIdleConnections()
			var mine []time.Duration
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
					break
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					if ctx.Err() == nil {
						mu.Lock()
						failed = fmt.Errorf("%s: %v", resp.Status, err)
						mu.Unlock()
					}
					break
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if failed != nil {
		t.Fatalf("manifest GET from %s: %v", addr, failed)
	}
	slices.Sort(lat)
	return float64(len(lat)) / dur.Seconds(), lat[len(lat)*99/100]
}

func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func syncFS() { exec.Command("sync").Run() }

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListen waits until something accepts connections on addr.
func waitListen(t *testing.T, addr string) {
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// berthBinary returns $BERTH_BIN, or builds berth.
func berthBinary(t *testing.T) string {
	if bin := os.Getenv("BERTH_BIN"); bin != "" {
		return bin
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "berth")
	if out, err := exec.Command("go", "build", "-o", dir+"/", "github.com/berth-dev/berth/cmd/berth", "github.com/berth-dev/berth/cmd/berth-imagetools").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBerth runs `berth registry serve` as a process of its own with its
// storage under dir and returns its address and pid.
func startBerth(t *testing.T, bin, dir string) (string, int) {
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--root", filepath.Join(dir, "data"), "registry", "serve", "--addr", addr, "--root", filepath.Join(dir, "registry"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListen(t, addr)
	return addr, cmd.Process.Pid
}

// startDistribution runs Debian's docker-registry with filesystem storage
// under dir and deletes enabled, as the conformance peer runs, and returns
// its address and pid.
func startDistribution(t *testing.T, dir string) (string, int) {
	addr := freeAddr(t)
	cfg := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp:\n  addr: %s\n", filepath.Join(dir, "storage"), addr)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644)
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListen(t, addr)
	return addr, cmd.Process.Pid
}

// layout writes into dir an OCI layout with one image of n random layers
// of size bytes each.
func layout(t *testing.T, dir string, n, size int) string {
	write := func(b []byte) map[string]any {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return map[string]any{"digest": d, "size": len(b)}
	}
	var layers, diffIDs []any
	data := make([]byte, size)
	for range n {
		rand.Read(data)
		// A gzip stream of stored blocks: size bytes of random data, as
		// large as they are, in the format the media type says. Bare random
		// bytes labelled tar+gzip make skopeo gzip every layer it pushes,
		// and the push rows then time skopeo's compressor.
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.NoCompression)
		zw.Write(data)
		zw.Close()
		l := write(z.Bytes())
		l["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
		layers = append(layers, l)
		diffIDs = append(diffIDs, digest.FromBytes(data))
	}
	cfgJSON, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cfg := write(cfgJSON)
	cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
	mJSON, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": layers})
	m := write(mJSON)
	m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
	m["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "latest"}
	top, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{m}})
	os.WriteFile(filepath.Join(dir, "index.json"), top, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return dir
}
