package remotes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

// hostTransports caches one transport per host (nil: the default one).
type hostTransports struct {
	mu sync.Mutex
	m  map[string]*http.Transport
}

func (h *hostTransports) get(host string, mk func() (*http.Transport, error)) (*http.Transport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.m[host]; ok {
		return t, nil
	}
	t, err := mk()
	if err != nil {
		return nil, err
	}
	if h.m == nil {
		h.m = map[string]*http.Transport{}
	}
	h.m[host] = t
	return t, nil
}

// IsTransient reports whether err is worth retrying: a connection reset or
// cut short, or a registry saying it is busy. A refused connection or an
// unknown host is not: it will not heal in a second.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.Temporary()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classed gives an error of this package one of errdefs' classes.
type classed struct {
	class error
	err   error
}

func (c *classed) Error() string   { return c.err.Error() }
func (c *classed) Unwrap() []error { return []error{c.class, c.err} }

// classify words a protocol or network error in one short line and gives
// it its errdefs class.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		var msgs []string
		for _, d := range te.Errors {
			msgs = append(msgs, strings.ToLower(string(d.Code))+": "+d.Message)
		}
		msg := strings.Join(msgs, "; ")
		if msg == "" {
			msg = fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
		}
		switch te.StatusCode {
		case http.StatusUnauthorized:
			if len(te.Errors) == 0 {
				msg = "unauthorized: authentication required"
			}
			return &classed{errdefs.ErrPermission, errors.New(msg)}
		case http.StatusForbidden:
			return &classed{errdefs.ErrPermission, errors.New(msg)}
		case http.StatusNotFound:
			return errdefs.NotFound("%s", msg)
		case http.StatusBadRequest:
			return errdefs.InvalidArgument("%s", msg)
		}
		return &classed{errdefs.ErrUnavailable, fmt.Errorf("registry error: %s", msg)}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &classed{errdefs.ErrUnavailable, fmt.Errorf("lookup %s: %s", dnsErr.Name, dnsErr.Err)}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		what := "connect"
		if errors.Is(err, syscall.ECONNREFUSED) {
			what = "connection refused"
			return &classed{errdefs.ErrUnavailable, fmt.Errorf("%s: %s", opErr.Addr, what)}
		}
		return &classed{errdefs.ErrUnavailable, fmt.Errorf("%s %s: %v", what, opErr.Addr, opErr.Err)}
	}
	return err
}

// Classify is classify for callers of go-containerregistry's remote package
// with a Repo's transport.
func Classify(err error) error { return classify(err) }

// blobURL is the URL of a blob of the repository.
func (r *Repo) blobURL(d digest.Digest) string {
	reg := r.Name.Registry
	return reg.Scheme() + "://" + reg.RegistryStr() + "/v2/" + r.Name.RepositoryStr() + "/blobs/" + d.String()
}

// BlobExists asks the registry (HEAD) whether the repository has blob d.
func (r *Repo) BlobExists(ctx context.Context, d digest.Digest) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.blobURL(d), nil)
	if err != nil {
		return false, err
	}
	resp, err := (&http.Client{Transport: r.Transport}).Do(req)
	if err != nil {
		return false, classify(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, classify(transport.CheckError(resp, http.StatusOK, http.StatusNotFound))
}

// FetchBlob returns a reader of blob d (of size bytes, or -1 if unknown)
// from byte offset on. The reader survives a connection that breaks in the
// middle: it asks again for the rest with a Range request, with backoff, a
// few times. The caller verifies the digest.
func (r *Repo) FetchBlob(ctx context.Context, d digest.Digest, size, offset int64) (io.ReadCloser, error) {
	br := &blobReader{ctx: ctx, r: r, d: d, size: size, off: offset}
	if err := br.open(); err != nil {
		return nil, err
	}
	return br, nil
}

// blobReader reads a blob, resuming with Range requests.
type blobReader struct {
	ctx  context.Context
	r    *Repo
	d    digest.Digest
	size int64
	off  int64
	body io.ReadCloser
	// fails counts breaks in a row with no byte read between them.
	fails int
}

func (b *blobReader) open() error {
	var lastErr error
	wait := b.r.c.backoff.First
	for try := 0; try < b.r.c.backoff.Tries; try++ {
		if try > 0 {
			select {
			case <-time.After(wait):
			case <-b.ctx.Done():
				return b.ctx.Err()
			}
			wait *= 2
		}
		err := b.openOnce()
		if err == nil || !IsTransient(err) {
			return err
		}
		lastErr = err
	}
	return lastErr
}

func (b *blobReader) openOnce() error {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.r.blobURL(b.d), nil)
	if err != nil {
		return err
	}
	if b.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(b.off, 10)+"-")
	}
	resp, err := (&http.Client{Transport: b.r.Transport}).Do(req)
	if err != nil {
		return classify(err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && b.off > 0:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(b.off, 10)+"-") {
			resp.Body.Close()
			return fmt.Errorf("blob %s: registry answered range %d- with %q", b.d, b.off, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		if b.off > 0 {
			// The registry ignored the range: skip what we have.
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				return fmt.Errorf("blob %s: %w", b.d, err)
			}
		}
	default:
		err := transport.CheckError(resp, http.StatusOK)
		resp.Body.Close()
		if err == nil {
			err = fmt.Errorf("blob %s: unexpected status %s", b.d, resp.Status)
		}
		return fmt.Errorf("blob %s: %w", b.d, classify(err))
	}
	b.body = resp.Body
	return nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			if err := b.open(); err != nil {
				return 0, err
			}
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if err == io.EOF && b.size >= 0 && b.off < b.size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		if b.size >= 0 && b.off > b.size {
			return n, fmt.Errorf("blob %s: registry sent more than its %d bytes", b.d, b.size)
		}
		b.body.Close()
		b.body = nil
		if n > 0 {
			b.fails = 0
		}
		b.fails++
		if !IsTransient(err) || b.ctx.Err() != nil || b.fails >= b.r.c.backoff.Tries {
			return n, fmt.Errorf("blob %s: %w", b.d, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (b *blobReader) Close() error {
	if b.body != nil {
		return b.body.Close()
	}
	return nil
}
