package engine

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/monitor"
)

// A run's start is prepared while its container is created: the record is
// sent to the monitor ahead (a "prepare" request), and the monitor sets up
// what needs neither the record on disk nor the container's root — its
// network namespace, address and routes, which a start otherwise waited
// for — while this process writes the record and mounts the root. A Go
// message on the same connection then starts it as a "start" request
// would (or drops it, if the create failed). A monitor that does not know
// the request (an older binary still watching containers) or that is
// handing over is asked to start the container the usual way instead.
type preparedStart struct {
	name string        // the container's name when asked
	done chan struct{} // closed once conn or err is set
	conn *monitor.Conn
	err  error
}

// prepareStart asks the monitor, on another goroutine (it may have to
// start one), to prepare the start of c, a copy of the record being
// created.
func (e *Engine) prepareStart(ctx context.Context, c container.Container) *preparedStart {
	p := &preparedStart{name: c.Name, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		b, err := json.Marshal(&c)
		if err != nil {
			p.err = err
			return
		}
		conn, err := e.dialMonitor(ctx)
		if err != nil {
			p.err = err
			return
		}
		if err := conn.WriteJSON(monitor.Request{Op: "prepare", ID: c.ID, Container: b}); err != nil {
			conn.Close()
			p.err = err
			return
		}
		p.conn = conn
	}()
	return p
}

// abort drops a prepared start, and returns once the monitor has undone
// what it did (it answers then), so that a run that failed leaves nothing
// behind when it returns. Nil-safe.
func (p *preparedStart) abort() {
	if p == nil {
		return
	}
	<-p.done
	if p.conn != nil {
		p.conn.WriteJSON(monitor.Go{Abort: true})
		var resp monitor.Response
		p.conn.ReadJSON(&resp)
		p.conn.Close()
	}
}

// start starts a prepared container c as req asks, and reports whether
// it did ask: false means the caller must send req the usual way.
func (p *preparedStart) start(c *container.Container, req monitor.Request) (*monitor.Conn, monitor.Response, bool) {
	<-p.done
	if p.err != nil || p.name != c.Name {
		// The dial failed (asked again, it says why), or a name made up
		// anew since: the monitor's network would carry the old one.
		p.abort()
		return nil, monitor.Response{}, false
	}
	// A monitor that answered already (an error, or an unknown request)
	// has closed its end: what it wrote is still there to read.
	p.conn.WriteJSON(monitor.Go{RootMounted: req.RootMounted, Attach: req.Attach, Stdin: req.Stdin})
	var resp monitor.Response
	if err := p.conn.ReadJSON(&resp); err != nil || strings.HasPrefix(resp.Error, "unknown monitor request") {
		p.conn.Close()
		return nil, monitor.Response{}, false
	}
	return p.conn, resp, true
}
