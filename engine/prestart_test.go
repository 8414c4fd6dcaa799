package engine

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/monitor"
)

// TestPreparedStartProtocol checks the client side of a prepared start
// against each answer a monitor may give: the start, an error, a request an
// older monitor does not know, a monitor gone (handing over), and a name made
// up anew since the request.
func TestPreparedStartProtocol(t *testing.T) {
	c := &container.Container{ID: "0123456789abcdef", Name: "/a"}
	req := monitor.Request{Op: "start", ID: c.ID, RootMounted: true, Attach: true}
	for _, tt := range []struct {
		name    string
		answer  *monitor.Response // nil: close without answering
		rename  bool
		asked   bool
		wantErr bool
	}{
		{"started", &monitor.Response{Pid: 42}, false, true, false},
		{"failed", &monitor.Response{Error: "port is already allocated", ExitCode: 125}, false, true, true},
		{"older monitor", &monitor.Response{Error: `unknown monitor request "prepare"`}, false, false, false},
		{"handing over", nil, false, false, false},
		{"renamed", &monitor.Response{Pid: 42}, true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, server := socketPair(t)
			p := &preparedStart{name: c.Name, done: make(chan struct{}), conn: monitor.NewConn(client)}
			close(p.done)
			got := make(chan monitor.Go, 1)
			go func() {
				s := monitor.NewConn(server)
				defer s.Close()
				if tt.answer != nil && tt.answer.Error != "" && !tt.asked {
					s.WriteJSON(tt.answer) // an older monitor answers at once
					return
				}
				var g monitor.Go
				if err := s.ReadJSON(&g); err != nil {
					close(got)
					return
				}
				got <- g
				if g.Abort {
					s.WriteJSON(monitor.Response{Error: "dropped", ExitCode: 125})
				} else if tt.answer != nil {
					s.WriteJSON(tt.answer)
				}
			}()
			cc := *c
			if tt.rename {
				cc.Name = "/b"
			}
			conn, resp, asked := p.start(&cc, req)
			if asked != tt.asked {
				t.Fatalf("asked = %v, want %v", asked, tt.asked)
			}
			if !asked {
				if tt.rename {
					if g := <-got; !g.Abort {
						t.Errorf("renamed: the monitor was sent %+v, want an abort", g)
					}
				}
				return
			}
			defer conn.Close()
			if g := <-got; g != (monitor.Go{RootMounted: true, Attach: true}) {
				t.Errorf("the monitor was sent %+v", g)
			}
			if err := responseErr(resp); (err != nil) != tt.wantErr || (err == nil && resp.Pid != 42) {
				t.Errorf("response %+v, %v", resp, err)
			}
		})
	}
}

// socketPair returns the two ends of a Unix stream socket, as a monitor's
// connection is (buffered, unlike net.Pipe).
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "monitor-test")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}
