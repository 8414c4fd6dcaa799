package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// goParallel is how many blobs the Go client moves at once, as many as
// skopeo does.
const goParallel = 6

// goPushPull measures a Go client pushing an image of n fresh random layers
// of size bytes (POST, one PATCH with the whole blob, PUT ?digest=; then the
// config and the manifest) and pulling it (the manifest, then every blob,
// its digest checked and its bytes dropped).
func goPushPull(t *testing.T, sides []side, runs int, label string, n, size int) {
	mb := float64(n*size) / (1 << 20)
	push := map[string][]time.Duration{}
	pull := map[string][]time.Duration{}
	pushCPU := map[string]time.Duration{}
	pullCPU := map[string]time.Duration{}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: goParallel, DisableCompression: true}}
	defer c.CloseIdleConnections()
	layers := make([][]byte, n)
	digests := make([]digest.Digest, n)
	for i := range layers {
		layers[i] = make([]byte, size)
	}
	for i := 0; i <= runs; i++ { // run 0 warms up
		for j, l := range layers {
			rand.Read(l)
			digests[j] = digest.FromBytes(l)
		}
		order := sides
		if i%2 == 1 {
			order = []side{sides[1], sides[0]}
		}
		for _, s := range order {
			base := "http://" + s.addr + "/v2/bench/go-" + strconv.Itoa(n)
			tag := strconv.Itoa(i)
			c0 := cpuTime(s.pid)
			start := time.Now()
			if err := goPush(c, base, tag, layers, digests); err != nil {
				t.Fatalf("push to %s: %v", s.name, err)
			}
			d := time.Since(start)
			c1 := cpuTime(s.pid)
			syncFS()
			c2 := cpuTime(s.pid)
			start = time.Now()
			if err := goPull(c, base, tag); err != nil {
				t.Fatalf("pull from %s: %v", s.name, err)
			}
			p := time.Since(start)
			c3 := cpuTime(s.pid)
			if i > 0 {
				push[s.name] = append(push[s.name], d)
				pull[s.name] = append(pull[s.name], p)
				pushCPU[s.name] += c1 - c0
				pullCPU[s.name] += c3 - c2
			}
		}
	}
	for _, op := range []struct {
		name string
		m    map[string][]time.Duration
		cpu  map[string]time.Duration
	}{{"push", push, pushCPU}, {"pull", pull, pullCPU}} {
		b, d := median(op.m["berth"]), median(op.m["distribution"])
		t.Logf("%-4s %-17s Go client: berth %6.0f MB/s (%v)  distribution %6.0f MB/s (%v)  berth/distribution %.2f×",
			op.name, label, mb/b.Seconds(), b.Round(time.Millisecond), mb/d.Seconds(), d.Round(time.Millisecond), d.Seconds()/b.Seconds())
		bc, dc := op.cpu["berth"]/time.Duration(runs), op.cpu["distribution"]/time.Duration(runs)
		t.Logf("     %-17s registry CPU a copy: berth %v  distribution %v  distribution/berth %.2f×",
			"", bc, dc, dc.Seconds()/max(bc.Seconds(), 0.001))
	}
}

// goPush pushes an image of layers, whose digests the client knows already
// (as skopeo knows them from the source image's manifest).
func goPush(c *http.Client, base, tag string, layers [][]byte, diffIDs []digest.Digest) error {
	var g errgroup.Group
	g.SetLimit(goParallel)
	descs := make([]map[string]any, len(layers))
	for i, l := range layers {
		d := diffIDs[i]
		descs[i] = map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(l)}
		g.Go(func() error { return goPushBlob(c, base, d, l) })
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cd := digest.FromBytes(cfg)
	g.Go(func() error { return goPushBlob(c, base, cd, cfg) })
	if err := g.Wait(); err != nil {
		return err
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)}, "layers": descs})
	req, _ := http.NewRequest("PUT", base+"/manifests/"+tag, bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	_, err := goDo(c, req, http.StatusCreated)
	return err
}

func goPushBlob(c *http.Client, base string, d digest.Digest, b []byte) error {
	req, _ := http.NewRequest("POST", base+"/blobs/uploads/", nil)
	resp, err := goDo(c, req, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := resp.Location()
	if err != nil {
		return err
	}
	req, _ = http.NewRequest("PATCH", loc.String(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err = goDo(c, req, http.StatusAccepted); err != nil {
		return err
	}
	if loc, err = resp.Location(); err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	req, _ = http.NewRequest("PUT", loc.String(), nil)
	_, err = goDo(c, req, http.StatusCreated)
	return err
}

func goPull(c *http.Client, base, tag string) error {
	req, _ := http.NewRequest("GET", base+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	var m struct {
		Config struct{ Digest digest.Digest }
		Layers []struct{ Digest digest.Digest }
	}
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(goParallel)
	for _, d := range append([]digest.Digest{m.Config.Digest}, func() (ds []digest.Digest) {
		for _, l := range m.Layers {
			ds = append(ds, l.Digest)
		}
		return ds
	}()...) {
		g.Go(func() error {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/blobs/"+d.String(), nil)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET blob %s: %s", d, resp.Status)
			}
			v := d.Verifier()
			if _, err := io.Copy(v, resp.Body); err != nil {
				return err
			}
			if !v.Verified() {
				return fmt.Errorf("blob %s: digest mismatch", d)
			}
			return nil
		})
	}
	return g.Wait()
}

// goDo sends req and checks the response's status, draining its body.
func goDo(c *http.Client, req *http.Request, want int) (*http.Response, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, body)
	}
	return resp, nil
}
