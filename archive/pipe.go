package archive

import (
	"crypto/sha256"
	"hash"
	"io"
	"sync"
)

// prefetchBuffers is how many chunks of readBufSize bytes the reading
// goroutine of a prefetcher may hold ahead of its consumer.
const prefetchBuffers = 4

// prefetcher reads (decompresses) and hashes a stream on a goroutine of its
// own, a few chunks ahead of the consumer, so that on a machine with more
// than one CPU decompression and hashing overlap with writing files.
type prefetcher struct {
	chunks chan chunk
	free   chan []byte
	done   chan struct{}
	wg     sync.WaitGroup

	cur    []byte // unread part of the current chunk
	curBuf []byte // the current chunk's buffer, to hand back
	err    error  // sticky error, after the last chunk

	// Written by the goroutine only; read after stop.
	h hash.Hash
	n int64
}

type chunk struct {
	buf []byte
	n   int
	err error
}

func newPrefetcher(r io.Reader) *prefetcher {
	p := &prefetcher{
		chunks: make(chan chunk, prefetchBuffers),
		free:   make(chan []byte, prefetchBuffers),
		done:   make(chan struct{}),
		h:      sha256.New(),
	}
	for range prefetchBuffers {
		p.free <- make([]byte, readBufSize)
	}
	p.wg.Add(1)
	go p.fill(r)
	return p
}

func (p *prefetcher) fill(r io.Reader) {
	defer p.wg.Done()
	for {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.done:
			return
		}
		n, err := readFull(r, buf)
		p.h.Write(buf[:n])
		p.n += int64(n)
		select {
		case p.chunks <- chunk{buf: buf, n: n, err: err}:
		case <-p.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (p *prefetcher) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.curBuf != nil {
			p.free <- p.curBuf
			p.curBuf = nil
		}
		if p.err != nil {
			return 0, p.err
		}
		c := <-p.chunks
		p.cur, p.curBuf, p.err = c.buf[:c.n], c.buf, c.err
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// stop ends the reading goroutine and waits for it: after stop, the hash,
// the count and the underlying reader are the caller's again.
func (p *prefetcher) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
}

// readFull reads into buf until it is full or r fails, returning r's own
// error (io.EOF at the end, unlike io.ReadFull).
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
