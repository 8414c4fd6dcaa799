package server

import (
	"context"
	"io"
	"net"
	"syscall"
)

type connKey struct{}

// WithConn returns ctx carrying c, the connection of the requests served
// with it; set it as the http.Server's ConnContext. With it the handler
// receives large request bodies with fewer wake-ups (lowatReader).
func WithConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

const (
	// lowatMax is the most the receiving socket of a blob body is asked to
	// hold before it wakes the reader.
	lowatMax = 256 << 10
	// lowatMargin is what a lowatReader never counts on: more than the
	// http server's own buffer of the connection (4 KiB) can hold.
	lowatMargin = 64 << 10
	// lowatMinBody is the smallest body worth it.
	lowatMinBody = 2 * lowatMax
)

// lowatReader reads a request body of known length from a TCP connection
// while keeping the socket's SO_RCVLOWAT at up to lowatMax bytes as long
// as more than that is still to come. A client that sends slower than the
// server receives (skopeo hashing as it sends) otherwise wakes the reader
// for every segment that arrives: a goroutine parked and readied, an
// epoll_wait and a read of a few dozen KiB each time; the low mark cut the
// server's CPU for a 200 MB skopeo push by ~20 % (~360 to ~285 ms). Bodies
// over TLS are read as they come (the connection is a *tls.Conn). The
// low mark never exceeds what the
// client has still to send (less lowatMargin, for what the http server
// has buffered already), so the last bytes wake the reader; it is back at
// 1 before the body ends, and so when the connection's next request comes.
type lowatReader struct {
	r         io.Reader
	rc        syscall.RawConn
	remaining int64 // bytes of the body not read yet
	cur       int   // the socket's SO_RCVLOWAT as last set
	failed    bool
}

// newLowatReader returns body, wrapped in a lowatReader when the request
// of ctx came on a TCP connection (WithConn) and its body is large and of
// known length (its Content-Length: a client that sends less than that
// leaves the server waiting for the rest in any case). The caller must
// call the function it returns when done with the body: it puts the
// socket back at SO_RCVLOWAT 1.
func newLowatReader(ctx context.Context, body io.Reader, length int64) (io.Reader, func()) {
	if length < lowatMinBody {
		return body, func() {}
	}
	c, ok := ctx.Value(connKey{}).(*net.TCPConn)
	if !ok {
		return body, func() {}
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return body, func() {}
	}
	l := &lowatReader{r: body, rc: rc, remaining: length, cur: 1}
	return l, l.done
}

func (l *lowatReader) Read(p []byte) (int, error) {
	if !l.failed {
		l.set(int(min(max(l.remaining-lowatMargin, 1), lowatMax)))
	}
	n, err := l.r.Read(p)
	l.remaining -= int64(n)
	return n, err
}

func (l *lowatReader) set(n int) {
	if n == l.cur {
		return
	}
	if setRcvLowat(l.rc, n) != nil {
		// Not supported, or the connection is gone: read as everyone
		// else does.
		l.failed = true
		return
	}
	l.cur = n
}

// done puts SO_RCVLOWAT back at 1, where it is when the body ends early.
func (l *lowatReader) done() { l.set(1) }
