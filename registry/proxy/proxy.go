// Package proxy owns the registry's pull-through cache: repositories under
// a configured prefix mirror the repositories of an upstream registry, each
// prefix its own upstream. A pull that misses locally is fetched from the
// upstream, streamed to the client while it is stored, and served locally
// from then on.
//
//   - Manifests by digest are fetched once and kept; their digest is checked.
//   - Tags are re-checked upstream (HEAD) once they are older than the
//     upstream's TagTTL; a tag's modification time in storage says when it
//     was last found current, so a restart does not re-check everything.
//   - Blobs are written to storage while clients read them from the file
//     being written: concurrent pulls of one blob share one download, a
//     client that goes away does not stop it, and the blob is published only
//     once its digest verifies.
//   - An upstream that cannot be reached leaves what is cached served: a
//     stale tag is better than none.
//
// The server asks a Cache before answering "unknown"; the Cache only fills
// the store, and the server serves from the store as for any repository.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry/storage"
)

// Upstream is a registry mirrored under a prefix.
type Upstream struct {
	// Prefix is the repository prefix: <Prefix>/<repo> mirrors <repo>.
	Prefix string
	// URL is the upstream registry, "https://host[:port]" or
	// "http://host[:port]" for plain HTTP.
	URL string
	// Username and Password, when set, authenticate with the upstream
	// (basic auth, or Docker's token flow).
	Username, Password string
	// TagTTL is how long a tag is served without asking the upstream
	// again; DefaultTagTTL when zero.
	TagTTL time.Duration
}

// DefaultTagTTL is how long a cached tag is trusted when the configuration
// does not say.
const DefaultTagTTL = time.Minute

// Cache fills a store from upstream registries.
type Cache struct {
	store *storage.Store
	ups   []*upstream // longest prefix first
	log   *slog.Logger

	mu      sync.Mutex
	fills   map[string]*fill // blob downloads in progress, by name@digest
	flights map[string]*call // manifest look-ups in progress, by name:ref
}

type upstream struct {
	Upstream
	reg  name.Registry
	auth authn.Authenticator
	base http.RoundTripper

	mu         sync.Mutex
	transports map[string]http.RoundTripper // authenticated, by upstream repository
}

// New returns a Cache filling store from ups. Prefixes must be valid
// repository names and distinct.
func New(store *storage.Store, ups []Upstream, log *slog.Logger) (*Cache, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{store: store, log: log, fills: map[string]*fill{}, flights: map[string]*call{}}
	seen := map[string]bool{}
	for _, u := range ups {
		u.Prefix = strings.Trim(u.Prefix, "/")
		if !storage.ValidName(u.Prefix) {
			return nil, errdefs.InvalidArgument("proxy: invalid prefix %q (a repository name)", u.Prefix)
		}
		if seen[u.Prefix] {
			return nil, errdefs.InvalidArgument("proxy: prefix %q given twice", u.Prefix)
		}
		seen[u.Prefix] = true
		pu, err := url.Parse(u.URL)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || strings.Trim(pu.Path, "/") != "" {
			return nil, errdefs.InvalidArgument("proxy %s: url %q: want http(s)://host[:port]", u.Prefix, u.URL)
		}
		var opts []name.Option
		if pu.Scheme == "http" {
			opts = append(opts, name.Insecure)
		}
		reg, err := name.NewRegistry(pu.Host, opts...)
		if err != nil {
			return nil, errdefs.InvalidArgument("proxy %s: %v", u.Prefix, err)
		}
		if u.TagTTL <= 0 {
			u.TagTTL = DefaultTagTTL
		}
		var auth authn.Authenticator = authn.Anonymous
		if u.Username != "" || u.Password != "" {
			auth = authn.FromConfig(authn.AuthConfig{Username: u.Username, Password: u.Password})
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = 30 * time.Second
		t.MaxIdleConnsPerHost = 32
		t.ReadBufferSize = 256 << 10
		c.ups = append(c.ups, &upstream{Upstream: u, reg: reg, auth: auth, base: t, transports: map[string]http.RoundTripper{}})
	}
	sort.Slice(c.ups, func(i, j int) bool { return len(c.ups[i].Prefix) > len(c.ups[j].Prefix) })
	return c, nil
}

// route finds the upstream of repository name and the repository there.
func (c *Cache) route(name string) (*upstream, string, bool) {
	for _, u := range c.ups {
		if rest, ok := strings.CutPrefix(name, u.Prefix+"/"); ok && rest != "" {
			return u, rest, true
		}
	}
	return nil, "", false
}

// Covers reports whether repository name is a cache of an upstream
// repository. Such repositories are read-only to clients.
func (c *Cache) Covers(name string) bool {
	if c == nil {
		return false
	}
	_, _, ok := c.route(name)
	return ok
}

// transport returns an authenticated transport to repository repo of u,
// made once and kept: it holds the bearer token, refreshed as needed.
func (u *upstream) transport(ctx context.Context, repo string) (name.Repository, http.RoundTripper, error) {
	r := u.reg.Repo(repo)
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.transports[repo]; ok {
		return r, t, nil
	}
	rt := transport.NewRetry(u.base,
		transport.WithRetryBackoff(transport.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 2}),
		transport.WithRetryStatusCodes(http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	rt = transport.NewUserAgent(rt, "berth-registry-proxy")
	t, err := transport.NewWithContext(ctx, u.reg, u.auth, rt, []string{r.Scope(transport.PullScope)})
	if err != nil {
		return r, nil, unreachable(u, err)
	}
	u.transports[repo] = t
	return r, t, nil
}

// unreachable classifies an upstream failure: errdefs.ErrNotFound when the
// upstream answered that it has no such thing, errdefs.ErrUnavailable
// otherwise.
func unreachable(u *upstream, err error) error {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: upstream %s: %w", errdefs.ErrNotFound, u.URL, err)
	}
	return fmt.Errorf("%w: upstream %s: %w", errdefs.ErrUnavailable, u.URL, err)
}

// call is a manifest look-up others may wait for.
type call struct {
	done chan struct{}
	err  error
}

// Manifest makes sure ref (a tag or a digest) of repository name is in the
// store, fetching it from upstream if it is missing and, for a tag, asking
// the upstream whether it moved once it is older than the TTL. When the
// upstream cannot be reached, what the store has stands and no error is
// returned; errdefs.ErrNotFound says there is nothing to serve.
func (c *Cache) Manifest(ctx context.Context, name, ref string) error {
	u, repo, ok := c.route(name)
	if !ok {
		return nil
	}
	key := name + ":" + ref
	c.mu.Lock()
	if cl, ok := c.flights[key]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cl := &call{done: make(chan struct{})}
	c.flights[key] = cl
	c.mu.Unlock()
	// Not the client's context: a client that leaves should not fail
	// others waiting on the same look-up.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	cl.err = c.manifest(fctx, u, name, repo, ref)
	cancel()
	c.mu.Lock()
	delete(c.flights, key)
	c.mu.Unlock()
	close(cl.done)
	return cl.err
}

func (c *Cache) manifest(ctx context.Context, u *upstream, name, repo, ref string) error {
	if d, err := digest.Parse(ref); err == nil {
		if _, _, err := c.store.StatManifest(ctx, name, ref); err == nil {
			return nil // content addressed: never stale
		}
		return c.fetchManifest(ctx, u, name, repo, d, "")
	}
	if !storage.ValidTag(ref) {
		return nil // the server answers for invalid references
	}
	local, when, err := c.store.StatTag(ctx, name, ref)
	have := err == nil
	if have {
		if _, _, err := c.store.StatManifest(ctx, name, local.String()); err != nil {
			have = false
		}
	}
	if have && time.Since(when) < u.TagTTL {
		return nil
	}
	r, t, err := u.transport(ctx, repo)
	if err == nil {
		var desc *remoteDesc
		desc, err = head(ctx, u, r, t, ref)
		if err == nil {
			if have && desc.digest == local {
				if err := c.store.TouchTag(ctx, name, ref); err != nil {
					c.log.Warn("proxy: touch tag", "repo", name, "tag", ref, "err", err)
				}
				return nil
			}
			err = c.fetchManifest(ctx, u, name, repo, desc.digest, ref)
		}
	}
	if err == nil {
		return nil
	}
	if have && !errdefs.IsNotFound(err) {
		c.log.Warn("proxy: upstream unreachable, serving the cached tag", "repo", name, "tag", ref, "cached", local, "err", err)
		return nil
	}
	if have && errdefs.IsNotFound(err) {
		// Gone upstream: a cache follows its upstream.
		c.log.Info("proxy: tag gone upstream", "repo", name, "tag", ref)
		if derr := c.store.DeleteTag(ctx, name, ref); derr != nil && !errdefs.IsNotFound(derr) {
			c.log.Warn("proxy: untag", "repo", name, "tag", ref, "err", derr)
		}
	}
	return err
}

type remoteDesc struct {
	digest    digest.Digest
	mediaType string
}

// head asks the upstream which manifest ref names.
func head(ctx context.Context, u *upstream, r name.Repository, t http.RoundTripper, ref string) (*remoteDesc, error) {
	desc, err := remote.Head(r.Tag(ref), remote.WithTransport(t), remote.WithContext(ctx))
	if err != nil {
		return nil, unreachable(u, err)
	}
	d, err := digest.Parse(desc.Digest.String())
	if err != nil {
		return nil, err
	}
	return &remoteDesc{digest: d, mediaType: string(desc.MediaType)}, nil
}

// fetchManifest fetches manifest d from upstream, checks its digest, and
// stores it, tagged tag when tag is not empty.
func (c *Cache) fetchManifest(ctx context.Context, u *upstream, name, repo string, d digest.Digest, tag string) error {
	r, t, err := u.transport(ctx, repo)
	if err != nil {
		return err
	}
	desc, err := remote.Get(r.Digest(d.String()), remote.WithTransport(t), remote.WithContext(ctx))
	if err != nil {
		return unreachable(u, err)
	}
	if got := d.Algorithm().FromBytes(desc.Manifest); got != d {
		return errdefs.DataCorrupt("proxy: upstream %s sent manifest %s for %s", u.URL, got, d)
	}
	req := storage.PutRequest{Manifest: storage.Manifest{Digest: d, MediaType: string(desc.MediaType), Content: desc.Manifest}}
	if tag != "" {
		req.Tags = []string{tag}
	}
	// The blobs it refers to come when they are asked for.
	if err := c.store.PutManifest(ctx, name, req); err != nil {
		return fmt.Errorf("proxy: store manifest %s: %w", d, err)
	}
	c.log.Info("proxy: cached manifest", "repo", name, "digest", d, "tag", tag)
	return nil
}

// Tags lists the tags of the upstream repository behind name.
func (c *Cache) Tags(ctx context.Context, name string) ([]string, error) {
	u, repo, ok := c.route(name)
	if !ok {
		return nil, errdefs.NotFound("%s is not a cached repository", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, t, err := u.transport(ctx, repo)
	if err != nil {
		return nil, err
	}
	tags, err := remote.List(r, remote.WithTransport(t), remote.WithContext(ctx))
	if err != nil {
		return nil, unreachable(u, err)
	}
	sort.Strings(tags)
	return tags, nil
}

// StatBlob asks the upstream for the size of blob d of name (HEAD).
func (c *Cache) StatBlob(ctx context.Context, name string, d digest.Digest) (int64, error) {
	u, repo, ok := c.route(name)
	if !ok {
		return 0, errdefs.NotFound("blob %s not found in %s", d, name)
	}
	r, t, err := u.transport(ctx, repo)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, blobURL(r, d), nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return 0, unreachable(u, err)
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return 0, unreachable(u, err)
	}
	return resp.ContentLength, nil
}

func blobURL(r name.Repository, d digest.Digest) string {
	return r.Registry.Scheme() + "://" + r.RegistryStr() + "/v2/" + r.RepositoryStr() + "/blobs/" + d.String()
}

// Blob fetches blob d of name from upstream into the store and returns a
// reader of its bytes as they arrive, and its size (-1 if the upstream did
// not say). The download goes on when the reader is closed early, and is
// shared with every other reader of the same blob meanwhile. The reader
// fails, at its end, if the digest does not verify. The caller closes it.
func (c *Cache) Blob(ctx context.Context, name string, d digest.Digest) (io.ReadCloser, int64, error) {
	u, repo, ok := c.route(name)
	if !ok {
		return nil, 0, errdefs.NotFound("blob %s not found in %s", d, name)
	}
	key := name + "@" + d.String()
	c.mu.Lock()
	f, ok := c.fills[key]
	if !ok {
		f = &fill{ready: make(chan struct{})}
		f.cond = sync.NewCond(&f.mu)
		c.fills[key] = f
	}
	f.mu.Lock()
	f.readers++
	f.mu.Unlock()
	c.mu.Unlock()
	if !ok {
		go c.download(u, repo, name, key, d, f)
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		c.release(f)
		return nil, 0, ctx.Err()
	}
	if f.err != nil {
		c.release(f)
		return nil, 0, f.err
	}
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	return &follower{c: c, f: f, ctx: ctx, stop: stop}, f.size, nil
}

// A fill is a blob being downloaded into the store.
type fill struct {
	ready chan struct{} // closed once the upstream answered
	err   error         // the upstream's refusal, set before ready closes
	size  int64
	file  readerAt // the file being written, read by followers

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when written or done change
	readers int        // the file closes when the last goes, once done
	written int64
	done    bool
	final   error // the outcome, once done
}

type readerAt interface {
	io.ReaderAt
	io.Closer
}

func (c *Cache) release(f *fill) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readers--
	if f.readers == 0 && f.done && f.file != nil {
		f.file.Close()
	}
}

// download fetches a blob into the store for the readers of f.
func (c *Cache) download(u *upstream, repo, name, key string, d digest.Digest, f *fill) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	forget := func() {
		c.mu.Lock()
		delete(c.fills, key)
		c.mu.Unlock()
	}
	fail := func(err error) {
		forget()
		f.err = err
		close(f.ready)
	}
	r, t, err := u.transport(ctx, repo)
	if err != nil {
		fail(err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(r, d), nil)
	if err != nil {
		fail(err)
		return
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		fail(unreachable(u, err))
		return
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		fail(unreachable(u, err))
		return
	}
	w, err := c.store.NewBlobWriter(name, d)
	if err != nil {
		fail(err)
		return
	}
	defer w.Close()
	rf, err := os.Open(w.Path())
	if err != nil {
		fail(err)
		return
	}
	f.size, f.file = resp.ContentLength, rf
	close(f.ready)

	buf := make([]byte, 256<<10)
	var final error
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				final = fmt.Errorf("proxy: store blob %s: %w", d, werr)
				break
			}
			f.mu.Lock()
			f.written += int64(n)
			f.cond.Broadcast()
			f.mu.Unlock()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			final = unreachable(u, rerr)
			break
		}
	}
	if final == nil && f.size >= 0 && f.written != f.size {
		final = fmt.Errorf("proxy: upstream %s sent %d bytes of %s, announced %d", u.URL, f.written, d, f.size)
	}
	if final == nil {
		if _, err := w.Commit(); err != nil {
			final = fmt.Errorf("proxy: blob %s from %s: %w", d, u.URL, err)
		} else {
			c.log.Info("proxy: cached blob", "repo", name, "digest", d, "size", f.written)
		}
	}
	if final != nil {
		c.log.Warn("proxy: blob download failed", "repo", name, "digest", d, "err", final)
	}
	// Later readers find the blob in the store (or start again).
	forget()
	f.mu.Lock()
	f.done, f.final = true, final
	f.cond.Broadcast()
	if f.readers == 0 {
		f.file.Close()
	}
	f.mu.Unlock()
}

// follower reads a fill's file as it grows.
type follower struct {
	c    *Cache
	f    *fill
	ctx  context.Context
	stop func() bool
	off  int64
	once sync.Once
}

func (r *follower) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	// The last byte waits for the digest to verify: a client must not
	// receive a whole blob of bad bytes.
	last := func() bool { return f.size >= 0 && f.written == f.size && r.off >= f.size-1 }
	for !f.done && (f.written <= r.off || last()) && r.ctx.Err() == nil {
		f.cond.Wait()
	}
	avail, done, final := f.written-r.off, f.done, f.final
	if !done && f.size >= 0 && r.off+avail == f.size {
		avail--
	}
	if done && final != nil && f.size >= 0 && r.off+avail == f.size {
		avail--
	}
	f.mu.Unlock()
	if avail <= 0 {
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		if done && final != nil {
			return 0, final
		}
		return 0, io.EOF
	}
	if int64(len(p)) > avail {
		p = p[:avail]
	}
	n, err := f.file.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *follower) Close() error {
	r.once.Do(func() {
		r.stop()
		r.c.release(r.f)
	})
	return nil
}
