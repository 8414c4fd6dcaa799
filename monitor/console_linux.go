package monitor

import (
	"context"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// ConsoleSocket listens on a unix socket for the one pty master an OCI
// runtime sends when a container asks for a terminal (runc's
// --console-socket protocol: the master as SCM_RIGHTS on one message).
type ConsoleSocket struct {
	Path string
	ln   *net.UnixListener
}

// ListenConsole opens the socket at path.
func ListenConsole(path string) (*ConsoleSocket, error) {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &ConsoleSocket{Path: path, ln: ln}, nil
}

// Receive waits for the runtime to send the master, and returns it.
func (s *ConsoleSocket) Receive(ctx context.Context) (*os.File, error) {
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.ln.SetDeadline(dl)
	}
	c, err := s.ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, fmt.Errorf("console socket: no descriptor received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, fmt.Errorf("console socket: no descriptor received")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.CloseOnExec(fds[0])
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// Close stops listening.
func (s *ConsoleSocket) Close() error {
	os.Remove(s.Path)
	return s.ln.Close()
}

// Resize sets a terminal's window size.
func Resize(f *os.File, rows, cols uint16) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
}
