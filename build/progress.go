package build

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress shows a build's steps as BuildKit does. Plain: each vertex
// (a step) gets a number, its title, its output prefixed with the
// seconds since it started, then CACHED, DONE with its duration, or
// ERROR; lines of parallel stages interleave whole. On a terminal (tty)
// the whole list is redrawn in place ten times a second instead: one
// line per step with its state and duration, the last lines of output of
// those running, and a header with the time so far and the steps done.
type progress struct {
	mu   sync.Mutex
	w    io.Writer // nil for quiet
	next int

	// The live display's state (tty only).
	tty      bool
	width    int
	start    time.Time
	vertices []*vertex
	drawn    int // lines of the last frame
	stop     chan struct{}
	stopped  chan struct{}
}

// vertex is one numbered step of the progress.
type vertex struct {
	p     *progress
	n     int
	title string
	start time.Time
	// tail keeps the last lines of the step's output for an error.
	tail []string
	// end and state are the live display's: state is "" while running,
	// then "CACHED", "DONE" or "ERROR".
	end   time.Time
	state string
}

// newProgress writes to w (nil for nothing), live when tty is set.
func newProgress(w io.Writer, tty bool) *progress {
	p := &progress{w: w, tty: tty && w != nil, start: time.Now(), width: 80}
	if !p.tty {
		return p
	}
	if f, ok := w.(interface{ Fd() uintptr }); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			p.width = cols
		}
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw(false)
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// close draws the live display's last frame.
func (p *progress) close() {
	if !p.tty {
		return
	}
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(true)
}

// draw redraws the live display over its last frame. Preconditions: p.mu
// is held.
func (p *progress) draw(final bool) {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	finished := 0
	for _, v := range p.vertices {
		if v.state != "" {
			finished++
		}
	}
	header := fmt.Sprintf("[+] Building %.1fs (%d/%d)", time.Since(p.start).Seconds(), finished, len(p.vertices))
	if final {
		header += " FINISHED"
	}
	lines := []string{header}
	for _, v := range p.vertices {
		d := time.Since(v.start)
		if v.state != "" {
			d = v.end.Sub(v.start)
		}
		prefix := " => "
		switch v.state {
		case "CACHED", "ERROR":
			prefix += v.state + " "
		}
		lines = append(lines, p.fit(prefix+v.title, fmt.Sprintf("%.1fs", d.Seconds())))
		if v.state == "" || v.state == "ERROR" {
			tail := v.tail
			if len(tail) > 6 {
				tail = tail[len(tail)-6:]
			}
			for _, l := range tail {
				lines = append(lines, p.fit(" => => # "+l, ""))
			}
		}
	}
	for _, l := range lines {
		b.WriteString("\r\x1b[K")
		b.WriteString(l)
		b.WriteString("\n")
	}
	if len(lines) < p.drawn {
		b.WriteString("\x1b[J")
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

// fit makes a line of the display: text, then right at the edge the
// duration, cut to the terminal's width.
func (p *progress) fit(text, right string) string {
	text = strings.Map(func(r rune) rune {
		if r < ' ' {
			return ' '
		}
		return r
	}, text)
	w := p.width - 1
	room := w - len(right) - 1
	if right == "" {
		room = w
	}
	if room < 10 {
		room = 10
	}
	if r := []rune(text); len(r) > room {
		text = string(r[:room])
	}
	if right == "" {
		return text
	}
	return text + strings.Repeat(" ", max(1, w-len([]rune(text))-len(right))) + right
}

func (p *progress) vertex(title string) *vertex {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	v := &vertex{p: p, n: p.next, title: title, start: time.Now()}
	if p.tty {
		p.vertices = append(p.vertices, v)
	} else if p.w != nil {
		fmt.Fprintf(p.w, "#%d %s\n", v.n, title)
	}
	return v
}

func (v *vertex) printf(format string, args ...any) {
	v.p.mu.Lock()
	defer v.p.mu.Unlock()
	if v.p.w != nil && !v.p.tty {
		fmt.Fprintf(v.p.w, "#%d "+format+"\n", append([]any{v.n}, args...)...)
	}
}

// log records one line of the step's output.
func (v *vertex) log(line string) {
	const keep = 10
	v.p.mu.Lock()
	v.tail = append(v.tail, line)
	if len(v.tail) > keep {
		v.tail = v.tail[len(v.tail)-keep:]
	}
	v.p.mu.Unlock()
	v.printf("%.3f %s", time.Since(v.start).Seconds(), line)
}

// lastLines returns the last lines of the step's output.
func (v *vertex) lastLines() []string {
	v.p.mu.Lock()
	defer v.p.mu.Unlock()
	return slices.Clone(v.tail)
}

// finish ends the vertex in the live display.
func (v *vertex) finish(state string) {
	v.p.mu.Lock()
	defer v.p.mu.Unlock()
	v.state, v.end = state, time.Now()
}

func (v *vertex) cached() { v.finish("CACHED"); v.printf("CACHED\n") }

func (v *vertex) done() {
	v.finish("DONE")
	v.printf("DONE %.1fs\n", time.Since(v.start).Seconds())
}

func (v *vertex) fail(err error) { v.finish("ERROR"); v.printf("ERROR: %v\n", err) }

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
