package monitor

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Request is what a client asks of the monitor; one per connection.
type Request struct {
	Op string // "start", "prepare", "attach", "wait", "exec", "ping", "exit"
	ID string // container ID
	// Attach streams the container's stdio over the connection (start and
	// attach); Stdin also forwards the client's input.
	Attach, Stdin bool
	// Condition for wait: "not-running" (default), "next-exit", "removed".
	Condition string
	// Process is what an "exec" request starts in the container, detached:
	// the monitor is its parent and reaps it.
	Process *specs.Process `json:",omitempty"`
	// RootMounted says, in a start request, that the client (run) mounted
	// the container's root for this start, in the run directory: the
	// monitor uses it rather than mounting it again.
	RootMounted bool `json:",omitempty"`
	// Container is, in a "prepare" request, the record of a container
	// being created: the monitor prepares its start with it (its network:
	// what needs neither the record on disk nor the root) while the
	// client writes the record and mounts the root, then reads a Go on the
	// same connection and starts it, or drops it, as a "start" would.
	Container json.RawMessage `json:",omitempty"`
}

// Go follows a "prepare" request once the container is created (or not).
type Go struct {
	// Abort drops the prepared start: the container was not created.
	Abort bool `json:",omitempty"`
	// RootMounted, Attach and Stdin are as in a start request.
	RootMounted, Attach, Stdin bool `json:",omitempty"`
}

// Response answers a request. For an attached start it comes first, then
// the frames.
type Response struct {
	Error string `json:",omitempty"`
	// Class names the error's errdefs class ("not found", "conflict", ...)
	// so that the client can map it back.
	Class    string `json:",omitempty"`
	ExitCode int
	Pid      int `json:",omitempty"`
}

// Frame types. Every frame is a type byte, a 4-byte big-endian length,
// then the payload.
const (
	FrameStdin  byte = 0 // client to monitor: input (empty: end of input)
	FrameStdout byte = 1
	FrameStderr byte = 2
	FrameResize byte = 3 // client to monitor: 4 bytes, rows and columns as uint16
	FrameSignal byte = 4 // client to monitor: 1 byte, a signal to send the container
	FrameExit   byte = 5 // monitor to client: 4 bytes, the exit status; last frame
)

// Conn is a client or server end of one monitor connection.
type Conn struct {
	net.Conn
	r *bufio.Reader
}

// NewConn wraps a connection.
func NewConn(c net.Conn) *Conn { return &Conn{Conn: c, r: bufio.NewReaderSize(c, 4096)} }

// WriteJSON sends one JSON document on a line.
func (c *Conn) WriteJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

// ReadJSON reads one JSON line into v.
func (c *Conn) ReadJSON(v any) error {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// WriteFrame sends one frame.
func (c *Conn) WriteFrame(typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := c.Write(append(hdr[:], payload...)); err != nil {
		return err
	}
	return nil
}

// ReadFrame reads one frame.
func (c *Conn) ReadFrame() (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("monitor frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// FrameWriter is an io.Writer that sends what it is given as frames of one type.
type FrameWriter struct {
	C   *Conn
	Typ byte
}

func (w FrameWriter) Write(p []byte) (int, error) {
	if err := w.C.WriteFrame(w.Typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
