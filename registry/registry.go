// Package registry owns berth's registry server as a whole: its
// configuration (a JSON file and flags), putting storage, authorization and
// the HTTP API together, listening (plain or TLS), periodic garbage
// collection, and graceful shutdown. The pieces live in its subpackages:
// storage (bytes on disk), server (the distribution API), auth (who may do
// what).
package registry

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/proxy"
	"github.com/berth-dev/berth/registry/server"
	"github.com/berth-dev/berth/registry/storage"
)

// Config is the registry's configuration. Its JSON form is the config file
// (see README.md); flags override it.
type Config struct {
	// Addr is the listen address (default 127.0.0.1:5000).
	Addr string `json:"addr,omitempty"`
	// Root is the storage directory.
	Root string `json:"root,omitempty"`
	// ReadOnly refuses every write.
	ReadOnly bool `json:"readOnly,omitempty"`
	// CrossMount says which cross-repository mounts the registry performs:
	// "auto" (the default), "from" or "off" (see server.CrossMount).
	CrossMount string `json:"crossMount,omitempty"`

	TLS struct {
		Cert string `json:"cert,omitempty"`
		Key  string `json:"key,omitempty"`
	} `json:"tls"`

	Auth auth.Config `json:"auth"`

	Limits struct {
		// ManifestSize bounds a manifest (default 4 MiB).
		ManifestSize int64 `json:"manifestSize,omitempty"`
		// BodySize bounds any one request body; 0 is no limit.
		BodySize int64 `json:"bodySize,omitempty"`
	} `json:"limits"`

	GC struct {
		// Interval between collections while serving; 0 disables them.
		Interval Duration `json:"interval,omitempty"`
		// Grace keeps anything younger, so pushes in progress are safe
		// (default 1h).
		Grace Duration `json:"grace,omitempty"`
		// UploadTTL removes uploads idle for longer (default 24h).
		UploadTTL Duration `json:"uploadTTL,omitempty"`
	} `json:"gc"`

	// ShutdownTimeout bounds how long SIGTERM waits for requests in flight
	// (default 30s).
	ShutdownTimeout Duration `json:"shutdownTimeout,omitempty"`
	// AccessLog logs one line per request.
	AccessLog bool `json:"accessLog,omitempty"`

	// Proxies make the repositories under each prefix a pull-through cache
	// of an upstream registry.
	Proxies []ProxyConfig `json:"proxies,omitempty"`
}

// ProxyConfig is one upstream of the pull-through cache: a pull of
// <prefix>/<repo> is served from <url>'s <repo>.
type ProxyConfig struct {
	Prefix   string `json:"prefix"`
	URL      string `json:"url"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TagTTL is how long a cached tag is served before the upstream is
	// asked again (default 1m).
	TagTTL Duration `json:"tagTTL,omitempty"`
}

// Duration is a time.Duration written as "90s" or "1h" in JSON.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// DefaultAddr is where the registry listens unless told otherwise.
const DefaultAddr = "127.0.0.1:5000"

// LoadConfig reads a config file. Unknown fields are an error, so a typo
// does not silently leave a setting at its default.
func LoadConfig(path string) (Config, error) {
	var c Config
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("registry config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, errdefs.InvalidArgument("registry config %s: %v", path, err)
	}
	return c, nil
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.GC.Grace == 0 {
		c.GC.Grace = Duration(time.Hour)
	}
	if c.GC.UploadTTL == 0 {
		c.GC.UploadTTL = Duration(24 * time.Hour)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(30 * time.Second)
	}
}

// Registry is a configured registry, ready to serve.
type Registry struct {
	cfg     Config
	store   *storage.Store
	handler http.Handler
	log     *slog.Logger
}

// New opens the storage and builds the handler of a registry.
func New(cfg Config, log *slog.Logger) (*Registry, error) {
	cfg.setDefaults()
	if cfg.Root == "" {
		return nil, errdefs.InvalidArgument("registry: no storage directory")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mount, err := server.ParseCrossMount(cfg.CrossMount)
	if err != nil {
		return nil, err
	}
	store, err := storage.Open(cfg.Root)
	if err != nil {
		return nil, err
	}
	authz, err := auth.New(cfg.Auth)
	if err != nil {
		return nil, err
	}
	opts := server.Options{
		ReadOnly:        cfg.ReadOnly,
		CrossMount:      mount,
		MaxManifestSize: cfg.Limits.ManifestSize,
		MaxBodySize:     cfg.Limits.BodySize,
		Log:             log,
	}
	if len(cfg.Proxies) > 0 {
		ups := make([]proxy.Upstream, len(cfg.Proxies))
		for i, p := range cfg.Proxies {
			ups[i] = proxy.Upstream{Prefix: p.Prefix, URL: p.URL, Username: p.Username, Password: p.Password, TagTTL: time.Duration(p.TagTTL)}
		}
		if opts.Cache, err = proxy.New(store, ups, log); err != nil {
			return nil, err
		}
	}
	if authz != nil {
		opts.Auth = authz
	}
	if cfg.AccessLog {
		opts.Logger = log
	}
	var h http.Handler = server.New(store, opts)
	if tok := authz.TokenHandler(); tok != nil {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.Handle(auth.TokenPath, tok)
		h = mux
	}
	return &Registry{cfg: cfg, store: store, handler: h, log: log}, nil
}

// Handler returns the registry's HTTP handler.
func (r *Registry) Handler() http.Handler { return r.handler }

// Store returns the registry's storage.
func (r *Registry) Store() *storage.Store { return r.store }

// Serve listens and serves until ctx is done, then shuts down gracefully:
// it stops accepting connections and waits (up to the configured timeout)
// for requests in flight. ready, if not nil, receives the bound address.
func (r *Registry) Serve(ctx context.Context, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", r.cfg.Addr)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if r.cfg.TLS.Cert != "" || r.cfg.TLS.Key != "" {
		cert, err := tls.LoadX509KeyPair(r.cfg.TLS.Cert, r.cfg.TLS.Key)
		if err != nil {
			ln.Close()
			return errdefs.InvalidArgument("registry TLS: %v", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	}
	srv := &http.Server{
		Handler:           r.handler,
		ConnContext:       server.WithConn,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	if r.cfg.GC.Interval > 0 && !r.cfg.ReadOnly {
		go r.gcLoop(gcCtx)
	}
	startPprof(r.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	r.log.Info("registry listening", "addr", ln.Addr().String(), "root", r.cfg.Root, "tls", r.cfg.TLS.Cert != "")
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		r.store.Close()
		return fmt.Errorf("registry: %w", err)
	case <-ctx.Done():
	}
	stopGC()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(r.cfg.ShutdownTimeout))
	defer cancel()
	err = srv.Shutdown(sctx)
	r.store.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry shutdown: %w", err)
	}
	r.log.Info("registry stopped")
	return nil
}

func (r *Registry) gcLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(r.cfg.GC.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := r.store.GC(ctx, storage.GCOptions{Grace: time.Duration(r.cfg.GC.Grace), UploadTTL: time.Duration(r.cfg.GC.UploadTTL)})
		if err != nil {
			r.log.Warn("registry gc", "err", err)
			continue
		}
		r.log.Info("registry gc", "blobs", len(rep.Blobs), "manifests", len(rep.Manifests), "bytes", rep.Bytes)
	}
}

// GC runs one garbage collection on the storage of cfg.
func GC(ctx context.Context, cfg Config, dryRun bool) (storage.GCReport, error) {
	cfg.setDefaults()
	store, err := storage.Open(cfg.Root)
	if err != nil {
		return storage.GCReport{}, err
	}
	defer store.Close()
	return store.GC(ctx, storage.GCOptions{Grace: time.Duration(cfg.GC.Grace), UploadTTL: time.Duration(cfg.GC.UploadTTL), DryRun: dryRun})
}
