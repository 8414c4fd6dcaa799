// Package registry compares berth's registry with Debian's docker-registry
// (distribution 2.8) on loopback, skopeo as the client for both: push and
// pull of a single-layer image, as medians of several runs, with ratios.
// It prints numbers and asserts nothing. Run it with:
//
//	BERTH_BENCH=1 go test -v -run Compare ./bench/registry/
//
// BERTH_BENCH_MB sets the layer size (default 200).
package registry

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/registry"
)

func TestCompare(t *testing.T) {
	if os.Getenv("BERTH_BENCH") == "" {
		t.Skip("set BERTH_BENCH=1 to run the registry comparison")
	}
	for _, c := range []string{"skopeo", "docker-registry"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed (apt-get install skopeo docker-registry)", c)
		}
	}
	mb := 200
	if s := os.Getenv("BERTH_BENCH_MB"); s != "" {
		mb, _ = strconv.Atoi(s)
	}

	// berth, in process.
	r, err := registry.New(registry.Config{Root: t.TempDir(), Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	go r.Serve(ctx, func(a net.Addr) { addrc <- a })
	berth := (<-addrc).String()

	// distribution, as a process.
	dist := freeAddr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp:\n  addr: %s\n", filepath.Join(dir, "storage"), dist)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644)
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for range 50 {
		if c, err := net.Dial("tcp", dist); err == nil {
			c.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each push sends a layer the registry has not seen.
	const runs = 5
	srcs := make([]string, runs)
	for i := range srcs {
		srcs[i] = layout(t, mb<<20)
	}
	measure := func(addr, op string, i int) time.Duration {
		ref := fmt.Sprintf("docker://%s/bench/img:%d", addr, i)
		args := []string{"--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-compress=false", "oci:" + srcs[i] + ":latest", ref}
		if op == "pull" {
			args = []string{"--insecure-policy", "copy", "--src-tls-verify=false", fmt.Sprintf("docker://%s/bench/img:0", addr), "oci:" + t.TempDir() + ":latest"}
		}
		start := time.Now()
		if out, err := exec.Command("skopeo", args...).CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	for _, op := range []string{"push", "pull"} {
		med := map[string]time.Duration{}
		for _, side := range []struct{ name, addr string }{{"berth", berth}, {"distribution", dist}} {
			var ds []time.Duration
			for i := range runs {
				ds = append(ds, measure(side.addr, op, i))
			}
			slices.Sort(ds)
			med[side.name] = ds[runs/2]
			t.Logf("%-5s %-12s %d MB: median %v (%.0f MB/s)", op, side.name, mb, ds[runs/2].Round(time.Millisecond), float64(mb)/ds[runs/2].Seconds())
		}
		t.Logf("%-5s berth/distribution throughput ratio: %.2f", op, med["distribution"].Seconds()/med["berth"].Seconds())
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// layout writes an OCI layout with one image of one random layer of size bytes.
func layout(t *testing.T, size int) string {
	dir := t.TempDir()
	write := func(b []byte) map[string]any {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
		return map[string]any{"digest": d, "size": len(b)}
	}
	data := make([]byte, size)
	rand.Read(data)
	layer := write(data)
	layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
	cfgJSON, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []any{layer["digest"]}}})
	cfg := write(cfgJSON)
	cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
	mJSON, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": []any{layer}})
	m := write(mJSON)
	m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
	m["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "latest"}
	top, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{m}})
	os.WriteFile(filepath.Join(dir, "index.json"), top, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return dir
}
