// Package remotes owns berth's side of talking to image registries: how a
// name a user types maps onto a registry (Docker's naming, docker.io
// mirrors, which registries may be spoken to over plain HTTP), the
// credentials to present (Docker's config.json and its credential helpers),
// and the HTTP transports that carry the distribution protocol, with
// retries and resumable blob downloads.
//
// The protocol itself is google/go-containerregistry's: this package sets it
// up and hands the engine a Repo, an authenticated session with one
// repository, through which it fetches manifests and blobs and pushes them.
// What is done with the bytes (verifying, unpacking, storing) is the
// engine's business.
package remotes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/reference"
)

// Options configure a Client.
type Options struct {
	// Config is berth's registry configuration; nil reads the file
	// $BERTH_REGISTRIES_CONFIG names, or DefaultConfigPath (a missing file
	// is an empty configuration).
	Config *Config
	// AuthDir is the Docker configuration directory holding config.json;
	// empty means $DOCKER_CONFIG, or else ~/.docker, as Docker reads them.
	AuthDir string
	// Transport is the HTTP transport under everything (tests count or
	// break requests with it); nil builds one from the configuration.
	Transport http.RoundTripper
	// Backoff paces retries of transient failures; the zero value means
	// DefaultBackoff.
	Backoff Backoff
	// UserAgent is sent with every request.
	UserAgent string
}

// Backoff says how often, and how far apart, a transient failure is retried.
type Backoff struct {
	// First is the wait before the first retry; each next wait doubles.
	First time.Duration
	// Tries is the number of attempts in all, the first included.
	Tries int
}

// DefaultBackoff retries a transient failure twice, after 200 ms and 400 ms.
var DefaultBackoff = Backoff{First: 200 * time.Millisecond, Tries: 3}

// Client reaches registries. It is cheap, safe for concurrent use, and
// holds nothing but its configuration and an HTTP connection pool.
type Client struct {
	cfg     *Config
	authDir string
	base    http.RoundTripper
	backoff Backoff
	ua      string
}

// New returns a Client.
func New(opts Options) (*Client, error) {
	cfg := opts.Config
	if cfg == nil {
		var err error
		path := os.Getenv("BERTH_REGISTRIES_CONFIG")
		if path == "" {
			path = DefaultConfigPath
		}
		if cfg, err = LoadConfig(path); err != nil {
			return nil, err
		}
	}
	c := &Client{cfg: cfg, authDir: opts.AuthDir, base: opts.Transport, backoff: opts.Backoff, ua: opts.UserAgent}
	if c.authDir == "" {
		c.authDir = DockerConfigDir()
	}
	if c.backoff.Tries == 0 {
		c.backoff = DefaultBackoff
	}
	if c.ua == "" {
		c.ua = "berth"
	}
	if c.base == nil {
		t, err := c.newTransport()
		if err != nil {
			return nil, err
		}
		c.base = t
	}
	return c, nil
}

// DockerConfigDir is where Docker keeps config.json: $DOCKER_CONFIG, or
// ~/.docker.
func DockerConfigDir() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".docker")
}

// newTransport builds the base HTTP transport: Go's defaults, with the CA
// certificates and client certificates Docker's certs.d convention gives
// per registry (<dir>/<host:port>/*.crt, *.cert and *.key).
func (c *Client) newTransport() (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	// Large reads and writes: a layer is megabytes.
	t.ReadBufferSize = 256 << 10
	t.WriteBufferSize = 256 << 10
	certDirs := c.cfg.CertsDirs
	if len(certDirs) == 0 {
		certDirs = DefaultCertsDirs
	}
	return &certsTransport{inner: t, dirs: certDirs, insecure: c.Insecure}, nil
}

// certsTransport applies certs.d for the host of each request: it keeps one
// inner transport per host that has certificates of its own.
type certsTransport struct {
	inner    *http.Transport
	dirs     []string
	insecure func(host string) bool

	hosts hostTransports
}

func (ct *certsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return ct.inner.RoundTrip(req)
	}
	t, err := ct.hosts.get(req.URL.Host, func() (*http.Transport, error) {
		cfg, ok, err := loadCerts(ct.dirs, req.URL.Host, ct.inner.TLSClientConfig)
		if err != nil {
			return nil, err
		}
		if ct.insecure(req.URL.Host) {
			// Docker's insecure registries: TLS, when spoken, is not verified.
			cfg.InsecureSkipVerify = true
		} else if !ok {
			return nil, nil
		}
		t := ct.inner.Clone()
		t.TLSClientConfig = cfg
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	if t == nil {
		t = ct.inner
	}
	return t.RoundTrip(req)
}

// loadCerts reads the certs.d directory of host, if there is one.
func loadCerts(dirs []string, host string, base *tls.Config) (*tls.Config, bool, error) {
	cfg := base.Clone()
	found := false
	for _, d := range dirs {
		dir := filepath.Join(d, host)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				b, err := os.ReadFile(p)
				if err != nil {
					return nil, false, fmt.Errorf("read CA certificate: %w", err)
				}
				if cfg.RootCAs == nil {
					if cfg.RootCAs, err = x509.SystemCertPool(); err != nil {
						cfg.RootCAs = x509.NewCertPool()
					}
				}
				if !cfg.RootCAs.AppendCertsFromPEM(b) {
					return nil, false, errdefs.InvalidArgument("no certificate in %s", p)
				}
				found = true
			case strings.HasSuffix(e.Name(), ".cert"):
				key := strings.TrimSuffix(p, ".cert") + ".key"
				pair, err := tls.LoadX509KeyPair(p, key)
				if err != nil {
					return nil, false, fmt.Errorf("client certificate %s: %w", p, err)
				}
				cfg.Certificates = append(cfg.Certificates, pair)
				found = true
			}
		}
	}
	return cfg, found, nil
}

// Ref is a parsed image reference: what the user typed, normalized the way
// Docker does, and the same name for go-containerregistry.
type Ref struct {
	// Named is the normalized reference (docker.io/library/busybox:latest).
	Named reference.Named
	// Ref is the reference as go-containerregistry names it.
	Ref name.Reference
}

// String is the familiar form (busybox:latest).
func (r Ref) String() string { return reference.FamiliarString(r.Named) }

// Repository is the familiar repository name (busybox).
func (r Ref) Repository() string { return reference.FamiliarName(r.Named) }

// Domain is the registry host of the reference (docker.io for Docker Hub).
func (r Ref) Domain() string { return reference.Domain(r.Named) }

// ParseReference parses a reference as Docker does: busybox is
// docker.io/library/busybox:latest; a first component holding a dot, a
// colon or that is "localhost" names a registry.
func (c *Client) ParseReference(s string) (Ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, errdefs.InvalidArgument("invalid reference format: %q: %v", s, err)
	}
	named = reference.TagNameOnly(named)
	var ref name.Reference
	opts := c.nameOptions(reference.Domain(named))
	if d, ok := named.(reference.Digested); ok {
		ref, err = name.NewDigest(reference.TrimNamed(named).String()+"@"+d.Digest().String(), opts...)
	} else {
		ref, err = name.NewTag(named.String(), opts...)
	}
	if err != nil {
		return Ref{}, errdefs.InvalidArgument("invalid reference format: %q: %v", s, err)
	}
	return Ref{Named: named, Ref: ref}, nil
}

// nameOptions are the go-containerregistry naming options for a host:
// insecure (plain HTTP allowed) for loopback and configured registries.
func (c *Client) nameOptions(host string) []name.Option {
	opts := []name.Option{name.StrictValidation}
	if c.Insecure(host) {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// Insecure reports whether host may be spoken to over plain HTTP (and with
// unverified TLS): localhost, 127.0.0.0/8 and ::1 always, other hosts when
// the configuration lists them.
func (c *Client) Insecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	return c.cfg.insecure(host)
}

// Mirrors returns the registries to try, in order, for a repository on
// domain: docker.io's configured mirrors first, then the registry itself.
func (c *Client) Mirrors(domain string) []string {
	if domain != "docker.io" {
		return []string{domain}
	}
	var out []string
	for _, m := range c.cfg.Mirrors {
		m = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(m, "https://"), "http://"), "/")
		if m != "" {
			out = append(out, m)
		}
	}
	return append(out, domain)
}

// Scope is what a session with a repository may do.
type Scope int

// The scopes of a Repo.
const (
	Pull Scope = iota
	Push
)

// Repo is an authenticated session with one repository of one registry.
type Repo struct {
	// Name is the repository.
	Name name.Repository
	// Transport carries requests to the registry with credentials and
	// retries; go-containerregistry's remote package takes it as it is.
	Transport http.RoundTripper

	c *Client
}

// Open starts a session with the repository repo (a normalized
// reference.Named) on host (the repository's domain, or a mirror of it).
// Extra scopes (repository:other/name:pull, for cross-repository mounts)
// may be asked for.
func (c *Client) Open(ctx context.Context, host string, repo reference.Named, scope Scope, extra ...string) (*Repo, error) {
	path := reference.Path(repo)
	r, err := name.NewRepository(host+"/"+path, c.nameOptions(host)...)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid repository %s/%s: %v", host, path, err)
	}
	auth, err := c.Authenticator(ctx, host)
	if err != nil {
		return nil, err
	}
	action := transport.PullScope
	if scope == Push {
		action = transport.PushScope
	}
	scopes := append([]string{r.Scope(action)}, extra...)
	rt := transport.NewRetry(c.base, transport.WithRetryBackoff(c.retryBackoff()), transport.WithRetryPredicate(IsTransient),
		transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	rt = transport.NewUserAgent(rt, c.ua)
	tr, err := transport.NewWithContext(ctx, r.Registry, auth, rt, scopes)
	if err != nil {
		return nil, classify(err)
	}
	return &Repo{Name: r, Transport: tr, c: c}, nil
}

func (c *Client) retryBackoff() transport.Backoff {
	return transport.Backoff{Duration: c.backoff.First, Factor: 2, Jitter: 0.1, Steps: c.backoff.Tries}
}

// Authenticator returns the credentials for host from Docker's config.json
// (or its credential helpers), or anonymous access if there are none.
func (c *Client) Authenticator(ctx context.Context, host string) (authn.Authenticator, error) {
	ac, err := c.credentials(host)
	if err != nil {
		return nil, err
	}
	if ac == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(ac), nil
}

// Manifest is a manifest or index as a registry served it.
type Manifest struct {
	MediaType string
	Digest    digest.Digest
	Raw       []byte
}

// Manifest fetches the manifest or index that ident (a tag or a digest)
// names in the repository. A manifest asked for by digest is checked
// against it.
func (r *Repo) Manifest(ctx context.Context, ident string) (*Manifest, error) {
	var ref name.Reference
	if d, err := digest.Parse(ident); err == nil {
		ref = r.Name.Digest(d.String())
	} else {
		ref = r.Name.Tag(ident)
	}
	desc, err := remote.Get(ref, remote.WithTransport(r.Transport), remote.WithContext(ctx))
	if err != nil {
		return nil, classify(err)
	}
	return &Manifest{MediaType: string(desc.MediaType), Digest: digest.Digest(desc.Digest.String()), Raw: desc.Manifest}, nil
}

// Tags lists the tags of the repository.
func (r *Repo) Tags(ctx context.Context) ([]string, error) {
	tags, err := remote.List(r.Name, remote.WithTransport(r.Transport), remote.WithContext(ctx))
	if err != nil {
		return nil, classify(err)
	}
	return tags, nil
}

// RemoteOptions are the options go-containerregistry's remote package
// takes to talk to the repository through this session.
func (r *Repo) RemoteOptions(ctx context.Context, jobs int) []remote.Option {
	opts := []remote.Option{remote.WithTransport(r.Transport), remote.WithContext(ctx)}
	if jobs > 0 {
		opts = append(opts, remote.WithJobs(jobs))
	}
	return opts
}
