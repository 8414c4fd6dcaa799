// Package server owns the HTTP face of berth's registry: the OCI
// distribution API 1.1 (/v2/...) over a storage.Store, with authorization,
// request logs, limits and a Prometheus /metrics endpoint.
package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/proxy"
	"github.com/berth-dev/berth/registry/storage"
)

// Options configure a Handler.
type Options struct {
	// Auth authorizes requests; nil lets everyone do everything.
	Auth auth.Authorizer
	// ReadOnly refuses every write with 405 UNSUPPORTED.
	ReadOnly bool
	// MaxManifestSize bounds a manifest's size (default 4 MiB).
	MaxManifestSize int64
	// MaxBodySize bounds the body of any one blob request; 0 is no limit.
	MaxBodySize int64
	// Logger receives one line per request; nil logs nothing.
	Logger *slog.Logger
	// Cache, when set, fills misses of the repositories it covers from
	// their upstream registries (a pull-through cache); clients may not
	// write to those repositories.
	Cache *proxy.Cache
	// Log receives what the server has to say besides requests (upstream
	// failures); nil discards it.
	Log *slog.Logger
	// CrossMount says which mount requests link a blob the registry
	// holds; the zero value is MountAuto.
	CrossMount CrossMount
}

// CrossMount says which cross-repository mounts (POST
// /v2/<name>/blobs/uploads/?mount=<digest>[&from=<repository>]) a registry
// performs. A mount it does not perform starts an upload session instead
// (202 and a Location, as the spec says), and the client uploads the blob.
type CrossMount string

const (
	// MountAuto mounts a blob of the repository from names, and, when the
	// request names none and no authorization is configured, any blob the
	// registry holds (with authorization, a mount without from names no
	// repository whose pull right could be checked). The default.
	MountAuto CrossMount = "auto"
	// MountFrom mounts only a blob of the repository from names: a mount
	// without from starts an upload, whatever the authorization.
	MountFrom CrossMount = "from"
	// MountOff never mounts: every repository receives its blobs by
	// upload, and no request learns which blobs other repositories hold.
	MountOff CrossMount = "off"
)

// ParseCrossMount checks a CrossMount setting; "" is MountAuto.
func ParseCrossMount(s string) (CrossMount, error) {
	switch m := CrossMount(s); m {
	case "":
		return MountAuto, nil
	case MountAuto, MountFrom, MountOff:
		return m, nil
	}
	return "", errdefs.InvalidArgument("cross-repository mount %q: want auto, from or off", s)
}

// mounts reports whether a mount request naming from (maybe "") may link
// a blob.
func (h *Handler) mounts(from string) bool {
	switch h.opts.CrossMount {
	case MountOff:
		return false
	case MountFrom:
		return from != ""
	}
	return from != "" || h.opts.Auth == nil
}

// DefaultMaxManifestSize is the manifest limit when Options leave it unset;
// the spec asks registries to accept at least 4 MiB.
const DefaultMaxManifestSize = 4 << 20

// Handler serves the distribution API over a store.
type Handler struct {
	store   *storage.Store
	opts    Options
	metrics *metrics
	// sendBufs are the buffers of copyingWriter.
	sendBufs sync.Pool
}

// New returns a Handler serving store.
func New(store *storage.Store, opts Options) *Handler {
	if opts.CrossMount == "" {
		opts.CrossMount = MountAuto
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{store: store, opts: opts, metrics: newMetrics()}
	h.sendBufs.New = func() any {
		b := make([]byte, sendBufSize)
		return &b
	}
	return h
}

// route is a parsed /v2/ path.
type route struct {
	kind string // ping, catalog, tags, manifest, blob, uploads, upload, referrers
	name string // repository
	ref  string // tag, digest or upload id
}

func parseRoute(p string) (route, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		if p == "/v2" {
			return route{kind: "ping"}, true
		}
		return route{}, false
	}
	switch rest {
	case "":
		return route{kind: "ping"}, true
	case "_catalog":
		return route{kind: "catalog"}, true
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: "tags", name: name}, true
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads/"); ok {
		return route{kind: "uploads", name: name}, true
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads"); ok {
		return route{kind: "uploads", name: name}, true
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return route{}, false
	}
	head, last := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return route{}, false
	}
	name, kind := head[:j], head[j+1:]
	switch kind {
	case "manifests":
		return route{kind: "manifest", name: name, ref: last}, true
	case "blobs":
		return route{kind: "blob", name: name, ref: last}, true
	case "referrers":
		return route{kind: "referrers", name: name, ref: last}, true
	case "uploads":
		if name, ok := strings.CutSuffix(name, "/blobs"); ok {
			return route{kind: "upload", name: name, ref: last}, true
		}
	}
	return route{}, false
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	var user string
	defer func() {
		d := time.Since(start)
		h.metrics.observe(r.Method, rec.status, d, rec.bytes)
		if h.opts.Logger != nil {
			h.opts.Logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"bytes", rec.bytes, "duration", d, "remote", r.RemoteAddr, "user", user)
		}
	}()
	if r.URL.Path == "/metrics" {
		h.metrics.serve(rec, r)
		return
	}
	rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := parseRoute(r.URL.Path)
	if !ok {
		writeError(rec, newError(http.StatusNotFound, codeNameUnknown, "unknown path "+strconv.Quote(r.URL.Path)))
		return
	}
	if rt.name != "" && !storage.ValidName(rt.name) {
		writeError(rec, newError(http.StatusBadRequest, codeNameInvalid, "invalid repository name "+strconv.Quote(rt.name)))
		return
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if write && h.opts.ReadOnly && rt.kind != "ping" {
		writeError(rec, newError(http.StatusMethodNotAllowed, codeUnsupported, "the registry is read-only"))
		return
	}
	if write && h.opts.Cache.Covers(rt.name) {
		writeError(rec, newError(http.StatusMethodNotAllowed, codeUnsupported, rt.name+" is a pull-through cache of an upstream registry"))
		return
	}
	if h.opts.Auth != nil {
		u, err := h.opts.Auth.Authorize(r, h.needs(rt, r))
		if err != nil {
			var c *auth.Challenge
			if errors.As(err, &c) {
				if c.Header != "" {
					rec.Header().Set("WWW-Authenticate", c.Header)
				}
				code := codeUnauthorized
				if c.Status == http.StatusForbidden {
					code = codeDenied
				}
				writeError(rec, newError(c.Status, code, c.Reason))
				return
			}
			writeError(rec, classify(err, nil))
			return
		}
		user = u
	}
	if h.opts.MaxBodySize > 0 && r.Body != nil {
		r.Body = http.MaxBytesReader(rec, r.Body, h.opts.MaxBodySize)
	}
	switch rt.kind {
	case "ping":
		h.ping(rec, r)
	case "catalog":
		h.catalog(rec, r)
	case "tags":
		h.tags(rec, r, rt)
	case "manifest":
		h.manifest(rec, r, rt)
	case "blob":
		h.blob(rec, r, rt)
	case "uploads":
		h.startUpload(rec, r, rt)
	case "upload":
		h.upload(rec, r, rt)
	case "referrers":
		h.referrers(rec, r, rt)
	}
}

// needs lists the accesses a request needs: a mount the registry would
// perform needs pull on the repository it mounts from.
func (h *Handler) needs(rt route, r *http.Request) []auth.Access {
	repo := func(action string) []auth.Access {
		return []auth.Access{{Type: "repository", Name: rt.name, Action: action}}
	}
	switch rt.kind {
	case "ping":
		return nil
	case "catalog":
		return []auth.Access{{Type: "registry", Name: "catalog", Action: "*"}}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return repo(auth.Pull)
	case http.MethodDelete:
		if rt.kind == "upload" {
			return repo(auth.Push)
		}
		return repo(auth.Delete)
	}
	need := []auth.Access{{Type: "repository", Name: rt.name, Action: auth.Pull}, {Type: "repository", Name: rt.name, Action: auth.Push}}
	if rt.kind == "uploads" {
		if from := r.URL.Query().Get("from"); from != "" && r.URL.Query().Get("mount") != "" && storage.ValidName(from) && h.mounts(from) {
			need = append(need, auth.Access{Type: "repository", Name: from, Action: auth.Pull})
		}
	}
	return need
}

func (h *Handler) ping(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte("{}"))
	}
}

func methodNotAllowed(w http.ResponseWriter) {
	writeError(w, newError(http.StatusMethodNotAllowed, codeUnsupported, "method not allowed"))
}

// recorder notes the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom hands a file to the connection's own ReadFrom, so that blobs go
// out with sendfile(2) rather than through a buffer (but to clients on
// loopback: copyingWriter).
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.wrote = true
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
