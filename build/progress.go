package build

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// progress writes BuildKit's plain progress lines: each vertex (a step)
// gets a number, its title, its output prefixed with the seconds since it
// started, then CACHED, DONE with its duration, or ERROR. Lines of
// parallel stages interleave whole.
type progress struct {
	mu   sync.Mutex
	w    io.Writer // nil for quiet
	next int
}

// vertex is one numbered step of the progress.
type vertex struct {
	p     *progress
	n     int
	start time.Time
	// tail keeps the last lines of the step's output for an error.
	tail []string
}

func (p *progress) vertex(title string) *vertex {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	v := &vertex{p: p, n: p.next, start: time.Now()}
	if p.w != nil {
		fmt.Fprintf(p.w, "#%d %s\n", v.n, title)
	}
	return v
}

func (v *vertex) printf(format string, args ...any) {
	v.p.mu.Lock()
	defer v.p.mu.Unlock()
	if v.p.w != nil {
		fmt.Fprintf(v.p.w, "#%d "+format+"\n", append([]any{v.n}, args...)...)
	}
}

// log records one line of the step's output.
func (v *vertex) log(line string) {
	const keep = 10
	v.tail = append(v.tail, line)
	if len(v.tail) > keep {
		v.tail = v.tail[len(v.tail)-keep:]
	}
	v.printf("%.3f %s", time.Since(v.start).Seconds(), line)
}

func (v *vertex) cached() { v.printf("CACHED\n") }

func (v *vertex) done() { v.printf("DONE %.1fs\n", time.Since(v.start).Seconds()) }

func (v *vertex) fail(err error) { v.printf("ERROR: %v\n", err) }

// lineWriter splits what a step writes into lines for its vertex.
type lineWriter struct {
	v   *vertex
	buf []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.v.log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.v.log(string(w.buf))
		w.buf = nil
	}
}
