// Package registrytest starts real registries for tests of berth's
// registry client: Debian's docker-registry (the distribution registry) on
// a free loopback port, over plain HTTP, or over TLS with htpasswd basic
// auth, or behind a small token server of its own. Everything listens on
// 127.0.0.1 only and is stopped when the test ends.
package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Options choose how the registry is set up.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 made for the test.
	TLS bool
	// Users, if set, turns on htpasswd basic auth with these users and
	// passwords (docker-registry requires TLS with it: TLS is implied).
	Users map[string]string
	// Token, if set, turns on token auth: a token server of the test's own
	// grants every scope to these users and passwords (and pull to
	// anonymous clients when AnonymousPull is set).
	Token         map[string]string
	AnonymousPull bool
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is 127.0.0.1:port.
	Host string
	// CACert is the PEM certificate clients must trust (TLS only).
	CACert []byte
	// Dir holds its storage.
	Dir string
}

// Need skips the test unless the named command is installed, trying
// apt-get first (as hack/lib.sh's ensure_pkgs does) when running as root.
func Need(t testing.TB, cmd, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(cmd); err == nil {
		return
	}
	if os.Geteuid() == 0 {
		c := exec.Command("apt-get", "install", "-y", "--no-install-recommends", pkg)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		c.Run()
		if _, err := exec.LookPath(cmd); err == nil {
			return
		}
	}
	t.Skipf("%s is not installed (Debian package %s)", cmd, pkg)
}

// Start runs a docker-registry for the test.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	Need(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	r := &Registry{Dir: dir}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", filepath.Join(dir, "data"))
	useTLS := opts.TLS || opts.Users != nil
	var certFile, keyFile string
	if useTLS || opts.Token != nil {
		certPEM, keyPEM, cert := selfSigned(t)
		r.CACert = certPEM
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		must(t, os.WriteFile(certFile, certPEM, 0o600))
		must(t, os.WriteFile(keyFile, keyPEM, 0o600))
		if opts.Token != nil {
			realm := startTokenServer(t, cert, opts.Token, opts.AnonymousPull)
			fmt.Fprintf(&cfg, "auth:\n  token:\n    realm: %s\n    service: berth-test\n    issuer: berth-test-issuer\n    rootcertbundle: %s\n", realm, certFile)
		}
	}
	if opts.Users != nil {
		var hp strings.Builder
		for u, p := range opts.Users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			must(t, err)
			fmt.Fprintf(&hp, "%s:%s\n", u, h)
		}
		must(t, os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(hp.String()), 0o600))
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	for attempt := 0; ; attempt++ {
		port := FreePort(t)
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		c := cfg.String() + fmt.Sprintf("http:\n  addr: %s\n", r.Host)
		if useTLS {
			c += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
		}
		cfgPath := filepath.Join(dir, "config.yml")
		must(t, os.WriteFile(cfgPath, []byte(c), 0o600))
		cmd := exec.Command("docker-registry", "serve", cfgPath)
		logf, err := os.Create(filepath.Join(dir, "registry.log"))
		must(t, err)
		cmd.Stdout, cmd.Stderr = logf, logf
		must(t, cmd.Start())
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		if waitListening(r.Host, exited) {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return r
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 3 {
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not start:\n%s", log)
		}
	}
}

// waitListening waits until something accepts connections on addr, or the
// process exits.
func waitListening(addr string, exited <-chan struct{}) bool {
	for i := 0; i < 400; i++ {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// CertsDir writes the registry's CA certificate in Docker's certs.d layout
// under a new directory and returns that directory.
func (r *Registry) CertsDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(d, r.Host), 0o755))
	must(t, os.WriteFile(filepath.Join(d, r.Host, "ca.crt"), r.CACert, 0o644))
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// selfSigned makes an ECDSA certificate for 127.0.0.1 and localhost.
func selfSigned(t testing.TB) (certPEM, keyPEM []byte, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	return certPEM, keyPEM, cert
}

// startTokenServer serves Docker's token protocol on loopback (plain HTTP)
// and returns its realm URL. Tokens are JWTs signed with cert's key and
// carry the certificate in their x5c header, which the registry checks
// against its rootcertbundle.
func startTokenServer(t testing.TB, cert tls.Certificate, users map[string]string, anonPull bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	key := cert.PrivateKey.(*ecdsa.PrivateKey)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		authed := ok && users[user] == pass && pass != ""
		if ok && !authed {
			http.Error(w, `{"details":"invalid credentials"}`, http.StatusUnauthorized)
			return
		}
		type access struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		}
		grants := []access{}
		for _, s := range req.URL.Query()["scope"] {
			parts := strings.Split(s, ":")
			if len(parts) != 3 {
				continue
			}
			var acts []string
			for _, a := range strings.Split(parts[2], ",") {
				if authed || (anonPull && a == "pull") {
					acts = append(acts, a)
				}
			}
			grants = append(grants, access{Type: parts[0], Name: parts[1], Actions: acts})
		}
		now := time.Now()
		claims := map[string]any{
			"iss": "berth-test-issuer", "sub": user, "aud": req.URL.Query().Get("service"),
			"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
			"jti": fmt.Sprint(now.UnixNano()), "access": grants,
		}
		tok, err := signJWT(key, cert.Certificate[0], claims)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 3600, "issued_at": now.UTC().Format(time.RFC3339)})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	// A realm that is a loopback IP literal is refused by clients (against
	// SSRF); "localhost" is a name, and still loopback.
	return fmt.Sprintf("http://localhost:%d/token", l.Addr().(*net.TCPAddr).Port)
}

func signJWT(key *ecdsa.PrivateKey, certDER []byte, claims map[string]any) (string, error) {
	hdr, err := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(certDER)}})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}
