package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsutil"
)

// A user network's resolver is one small process per network, started by
// the first Attach and stopped by the last Detach: daemonless berth has no
// long-lived process to embed it in (Docker answers at 127.0.0.11 from
// dockerd), so it follows Podman's aardvark-dns and answers on the
// network's gateway, port 53. It reads the network's endpoint records from
// the run root whenever they change, so names follow containers as they
// come and go without being told.

// dnsConfig is what the resolver of one network reads at start.
type dnsConfig struct {
	Listen    netip.Addr `json:"listen"`
	Port      int        `json:"port"`
	Upstreams []string   `json:"upstreams,omitempty"` // host:port
	Internal  bool       `json:"internal,omitempty"`
}

const (
	dnsConfigFile = "dns.json"
	dnsPidFile    = "dns.pid"
	dnsLogFile    = "dns.log"
)

// ensureDNS starts the network's resolver unless it runs already, and
// returns once it answers. Called with the lock held.
func (m *Manager) ensureDNS(ctx context.Context, n *Network) error {
	dir := m.stateDir(n.ID)
	if _, ok := readPidFile(filepath.Join(dir, dnsPidFile)); ok {
		return nil
	}
	host, err := readResolvConf("/etc/resolv.conf")
	if err != nil {
		return err
	}
	cfg := dnsConfig{Listen: n.Gateway, Port: 53, Internal: n.Internal}
	for _, s := range host.servers {
		cfg.Upstreams = append(cfg.Upstreams, netipJoin(s, 53))
	}
	b, _ := json.Marshal(cfg)
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, dnsConfigFile), b, 0o600); err != nil {
		return fmt.Errorf("start resolver: %w", err)
	}
	log, err := os.OpenFile(filepath.Join(dir, dnsLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start resolver: %w", err)
	}
	defer log.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start resolver: %w", err)
	}
	defer r.Close()
	argv := append(append([]string(nil), m.opts.DNSServer[1:]...), dir)
	cmd := exec.Command(m.opts.DNSServer[0], argv...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{w} // fd 3: the readiness pipe
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start resolver %s: %w", m.opts.DNSServer[0], err)
	}
	// Reap it if it ends while this process lives; otherwise init does.
	go cmd.Wait()
	ready := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 4096))
		ready <- string(b)
	}()
	var msg string
	select {
	case msg = <-ready:
	case <-ctx.Done():
		cmd.Process.Kill()
		return ctx.Err()
	}
	if msg != "ok\n" {
		cmd.Process.Kill()
		if msg == "" {
			msg = "exited before it was ready (see " + filepath.Join(dir, dnsLogFile) + ")"
		}
		return fmt.Errorf("start resolver of network %s: %s", n.Name, strings.TrimSpace(msg))
	}
	start, err := procStart(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		return fmt.Errorf("start resolver: %w", err)
	}
	rec := strconv.Itoa(cmd.Process.Pid) + " " + start + "\n"
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, dnsPidFile), []byte(rec), 0o600); err != nil {
		cmd.Process.Kill()
		return fmt.Errorf("start resolver: %w", err)
	}
	return nil
}

func netipJoin(ip string, port int) string {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)).String()
}

// stopDNS stops the network's resolver, if it runs, and waits for it to
// exit so that its port is free again. Called with the lock held.
func (m *Manager) stopDNS(n *Network) error {
	pidPath := filepath.Join(m.stateDir(n.ID), dnsPidFile)
	pid, ok := readPidFile(pidPath)
	if ok {
		if err := terminate(pid); err != nil {
			return fmt.Errorf("stop resolver of network %s: %w", n.Name, err)
		}
	}
	if err := os.Remove(pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stop resolver of network %s: %w", n.Name, err)
	}
	return nil
}

// terminate sends SIGTERM through a pidfd and waits (bounded) for the
// process to exit, then kills it.
func terminate(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	} else if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return err
	}
	for _, sig := range []unix.Signal{0, unix.SIGKILL} {
		if sig != 0 {
			unix.PidfdSendSignal(fd, sig, nil, 0)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 5000)
			if err == unix.EINTR {
				continue
			}
			if err == nil && n > 0 {
				return nil
			}
			break
		}
	}
	return fmt.Errorf("process %d did not exit", pid)
}

// readPidFile returns the pid of the file's "pid starttime" if that process
// still runs (and is the same process, not a reuse of its pid).
func readPidFile(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	if st, err := procStart(pid); err != nil || st != f[1] {
		return 0, false
	}
	return pid, true
}

// procStart reads a process's start time (field 22 of /proc/PID/stat),
// which tells a process from a later one given the same pid.
func procStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the name may hold spaces and ')'
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return "", fmt.Errorf("process %d has exited", pid)
	}
	return f[19], nil
}
