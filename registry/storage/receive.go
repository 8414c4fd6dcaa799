package storage

import (
	"io"
	"os"
	"sync"
)

// receiveBufSize is the size of the buffers blob bytes are received
// through: a 200 MB blob then costs a few hundred writes and hash calls,
// not the tens of thousands a 32 KiB io.Copy buffer makes.
const receiveBufSize = 1 << 20

// writebackChunk is how many bytes a receiver lets pile up before it asks
// the kernel to start writing them out (startWriteback). The bytes reach the
// disk while the rest of the blob arrives, and the fsync that publishes the
// blob finds little left to write. At 8 MiB, blobs of a few MB (most
// layers) never started theirs before the fsync: the PUT that commits a
// 5 MB blob then waited for all of it.
const writebackChunk = 1 << 20

var receiveBufs = sync.Pool{New: func() any {
	b := make([]byte, receiveBufSize)
	return &b
}}

// receiver writes to a file, hashes what it wrote (once, as it passes), and
// starts the writeback of every writebackChunk bytes.
type receiver struct {
	f *os.File
	h io.Writer // a hash; nil: none
	// off is the file offset of the next byte; started is the offset
	// below which writeback has been started.
	off, started int64
}

func newReceiver(f *os.File, h io.Writer, off int64) *receiver {
	return &receiver{f: f, h: h, off: off, started: off}
}

// Write implements io.Writer.
func (w *receiver) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.off += int64(n)
	if w.off-w.started >= writebackChunk {
		startWriteback(w.f, w.started, w.off-w.started)
		w.started = w.off
	}
	return n, err
}

// startRest starts the writeback of what is not on its way to the disk yet.
func (w *receiver) startRest() {
	if w.off > w.started {
		startWriteback(w.f, w.started, w.off-w.started)
		w.started = w.off
	}
}

// ReadFrom receives r to its end through a pooled buffer, filling the
// buffer as far as r allows before each write.
func (w *receiver) ReadFrom(r io.Reader) (int64, error) {
	bp := receiveBufs.Get().(*[]byte)
	defer receiveBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := readSome(r, buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			// The body is all here: the rest goes to the disk while the
			// client reads the response and sends the request that commits.
			w.startRest()
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// readSome reads into buf until it holds at least half of it, or r ends
// or fails: a socket hands over what has arrived, often a few KiB, and
// writing and hashing those one by one costs a system call each.
func readSome(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf)/2 {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
