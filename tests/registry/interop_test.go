package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/registry"
)

// layout writes an OCI image layout holding a multi-arch index (tag
// "multi") of two small images, the first also tagged "single", and
// returns its directory and the index's digest.
func layout(t *testing.T) (string, digest.Digest) {
	t.Helper()
	dir := t.TempDir()
	write := func(b []byte) map[string]any {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return map[string]any{"digest": d, "size": len(b)}
	}
	var manifests []map[string]any
	for _, arch := range []string{"amd64", "arm64"} {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		content := []byte("hello from " + arch + "\n")
		tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)})
		tw.Write(content)
		tw.Close()
		layer := write(tb.Bytes())
		layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
		cfgJSON, _ := json.Marshal(map[string]any{
			"architecture": arch, "os": "linux",
			"rootfs": map[string]any{"type": "layers", "diff_ids": []any{layer["digest"]}},
			"config": map[string]any{"Cmd": []string{"/hello"}},
		})
		cfg := write(cfgJSON)
		cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
		mJSON, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": cfg, "layers": []any{layer},
		})
		m := write(mJSON)
		m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
		m["platform"] = map[string]string{"architecture": arch, "os": "linux"}
		manifests = append(manifests, m)
	}
	idxJSON, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
	})
	idx := write(idxJSON)
	idx["mediaType"] = "application/vnd.oci.image.index.v1+json"
	idx["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "multi"}
	single := map[string]any{}
	for k, v := range manifests[0] {
		single[k] = v
	}
	single["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "single"}
	top, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{idx, single}})
	os.WriteFile(filepath.Join(dir, "index.json"), top, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return dir, idx["digest"].(digest.Digest)
}

func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "skopeo", append([]string{"--insecure-policy"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// roundTrip copies the layout's images into the registry at addr and back,
// checking that digests survive.
func roundTrip(t *testing.T, addr string, creds ...string) {
	src, _ := layout(t)
	tlsArgs := func(flag string) []string {
		if flag != "" {
			flag += "-"
		}
		a := []string{"--" + flag + "tls-verify=false"}
		if len(creds) == 2 {
			a = append(a, "--"+flag+"creds", creds[0]+":"+creds[1])
		}
		return a
	}
	ref := "docker://" + addr + "/interop/hello"
	skopeo(t, append(append([]string{"copy", "--all"}, tlsArgs("dest")...), "oci:"+src+":multi", ref+":multi")...)
	skopeo(t, append(append([]string{"copy"}, tlsArgs("dest")...), "oci:"+src+":single", ref+":single")...)

	// skopeo compresses the uncompressed layers on the way (so digests
	// change); what the registry serves is what must come back.
	raw := strings.TrimSuffix(skopeo(t, append(append([]string{"inspect", "--raw"}, tlsArgs("")...), ref+":multi")...), "\n")
	var served struct{ Manifests []json.RawMessage }
	if err := json.Unmarshal([]byte(raw), &served); err != nil || len(served.Manifests) != 2 {
		t.Fatalf("index in the registry: %v %s", err, raw)
	}
	idx := digest.FromString(raw)
	tags := skopeo(t, append(append([]string{"list-tags"}, tlsArgs("")...), ref)...)
	if !strings.Contains(tags, `"multi"`) || !strings.Contains(tags, `"single"`) {
		t.Fatalf("tags: %s", tags)
	}
	dst := t.TempDir()
	skopeo(t, append(append([]string{"copy", "--all"}, tlsArgs("src")...), ref+":multi", "oci:"+dst+":multi")...)
	var top struct {
		Manifests []struct{ Digest digest.Digest }
	}
	b, _ := os.ReadFile(filepath.Join(dst, "index.json"))
	json.Unmarshal(b, &top)
	if len(top.Manifests) != 1 || top.Manifests[0].Digest != idx {
		t.Fatalf("pulled index %s, want %s", b, idx)
	}
	// The layers came back intact: skopeo verified every digest, and the
	// arm64 image's layer holds the file written above.
	out := skopeo(t, append(append([]string{"inspect", "--override-arch", "arm64"}, tlsArgs("")...), ref+":multi")...)
	if !strings.Contains(out, `"Architecture": "arm64"`) {
		t.Fatalf("inspect arm64: %s", out)
	}
}

func TestSkopeoPlainHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("interop: skipped with -short")
	}
	need(t, "skopeo", "skopeo")
	addr := serve(t, registry.Config{})
	roundTrip(t, addr)
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T) (cert, key string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	kder, _ := x509.MarshalECPrivateKey(k)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

func htpasswd(t *testing.T, user, pass string) string {
	t.Helper()
	h, _ := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	f := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(f, []byte(user+":"+string(h)+"\n"), 0o600)
	return f
}

func TestTLSAndBasicAuth(t *testing.T) {
	var cfg registry.Config
	cfg.TLS.Cert, cfg.TLS.Key = selfSigned(t)
	cfg.Auth.Htpasswd = htpasswd(t, "alice", "wonderland")
	addr := serve(t, cfg)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("anonymous ping over TLS: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest("GET", "https://"+addr+"/v2/", nil)
	req.SetBasicAuth("alice", "wonderland")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ping with credentials: %d", resp.StatusCode)
	}
	if testing.Short() {
		return
	}
	need(t, "skopeo", "skopeo")
	roundTrip(t, addr, "alice", "wonderland")
}

// TestGracefulShutdown: a request in flight when the server is told to
// stop completes.
func TestGracefulShutdown(t *testing.T) {
	r, err := registry.New(registry.Config{Root: t.TempDir(), Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- r.Serve(ctx, func(a net.Addr) { addrc <- a }) }()
	addr := (<-addrc).String()

	// A monolithic upload whose body arrives slowly.
	body := strings.Repeat("x", 1<<20)
	d := digest.FromString(body)
	done := make(chan int, 1)
	bodyR, bodyW := io.Pipe()
	go func() {
		resp, err := http.Post(fmt.Sprintf("http://%s/v2/slow/blobs/uploads/?digest=%s", addr, d), "application/octet-stream", bodyR)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	bodyW.Write([]byte(body[:1000]))
	time.Sleep(100 * time.Millisecond)
	cancel() // SIGTERM
	time.Sleep(100 * time.Millisecond)
	bodyW.Write([]byte(body[1000:]))
	bodyW.Close()
	if code := <-done; code != 201 {
		t.Fatalf("request in flight at shutdown: status %d, want 201", code)
	}
	if err := <-errc; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
