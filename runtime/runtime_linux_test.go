package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestRunOutputAndExitCode(t *testing.T) {
	if out := mustRun(t, []string{"echo", "hello"}, nil); out != "hello\n" {
		t.Errorf("stdout %q, want hello", out)
	}
	r := run(t, newBundle(t, []string{"sh", "-c", "exit 3"}, nil))
	if r.err != nil || r.code != 3 {
		t.Errorf("exit: code %d err %v, want 3", r.code, r.err)
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	bundle := newBundle(t, []string{"sleep", "1000"}, nil)
	id := containerID(t)
	c, err := runtime.Create(ctx, id, bundle, runtime.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if _, err := runtime.Create(ctx, id, bundle, runtime.Options{Root: root}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want already exists", err)
	}
	l, err := runtime.Load(ctx, root, id)
	if err != nil {
		t.Fatal(err)
	}
	st := l.State(ctx)
	if st.Status != runtime.Created || st.Pid <= 0 || st.Bundle != bundle || st.ID != id {
		t.Fatalf("after create: %+v", st)
	}
	// The process has not run yet: no sleep in the container.
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Pid)); strings.Contains(string(b), "sleep") {
		t.Errorf("process runs before start: %q", b)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if s := l.Status(); s != runtime.Running {
		t.Errorf("after start: %s", s)
	}
	if err := l.Start(ctx); err == nil {
		t.Error("second start succeeded")
	}
	if err := l.Delete(ctx, false); !errdefs.IsConflict(err) {
		t.Errorf("delete of a running container: %v, want conflict", err)
	}
	if err := l.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if s := l.Status(); s != runtime.Paused {
		t.Errorf("after pause: %s", s)
	}
	if err := l.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	pids, err := l.Processes(ctx)
	if err != nil || len(pids) != 1 || pids[0] != st.Pid {
		t.Errorf("processes: %v %v, want [%d]", pids, err, st.Pid)
	}
	if err := l.Kill(ctx, unix.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	code, err := c.Wait(ctx)
	if err != nil || code != 137 {
		t.Errorf("wait: %d %v", code, err)
	}
	if s := l.Status(); s != runtime.Stopped {
		t.Errorf("after kill: %s", s)
	}
	if err := l.Kill(ctx, unix.SIGTERM, false); err == nil {
		t.Error("kill of a stopped container succeeded")
	}
	if err := l.Delete(ctx, false); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, root, id, "")
	if _, err := runtime.Load(ctx, root, id); !errdefs.IsNotFound(err) {
		t.Errorf("load after delete: %v", err)
	}
}

func TestDeleteForce(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	id := containerID(t)
	c, err := runtime.Create(ctx, id, newBundle(t, []string{"sleep", "1000"}, nil), runtime.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, root, id, "")
}

func TestNamespaces(t *testing.T) {
	out := mustRun(t, []string{"sh", "-c", "echo $$; hostname; for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done"},
		func(s *specs.Spec) { s.Hostname = "box"; s.Domainname = "example.org" })
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 {
		t.Fatalf("output %q", out)
	}
	if lines[0] != "1" {
		t.Errorf("pid inside = %s, want 1", lines[0])
	}
	if lines[1] != "box" {
		t.Errorf("hostname %q, want box", lines[1])
	}
	for i, n := range []string{"pid", "net", "ipc", "uts", "mnt", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + n)
		if lines[2+i] == host {
			t.Errorf("%s namespace is the host's (%s)", n, host)
		}
	}
}

func TestJoinNamespaceByPath(t *testing.T) {
	// The container joins the network namespace of a process of ours.
	ctx := context.Background()
	root := t.TempDir()
	id := containerID(t) + "-a"
	a, err := runtime.Create(ctx, id, newBundle(t, []string{"sleep", "1000"}, nil), runtime.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Delete(ctx, true)
	defer a.Release()
	netns := fmt.Sprintf("/proc/%d/ns/net", a.Pid())
	want, _ := os.Readlink(netns)
	out := mustRun(t, []string{"readlink", "/proc/self/ns/net"}, func(s *specs.Spec) {
		for i, n := range s.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				s.Linux.Namespaces[i].Path = netns
			}
		}
	})
	if strings.TrimSpace(out) != want {
		t.Errorf("net namespace %q, want %q", out, want)
	}
}

func TestUserNamespace(t *testing.T) {
	out := mustRun(t, []string{"cat", "/proc/self/uid_map"}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	})
	if f := strings.Fields(out); len(f) != 3 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" {
		t.Errorf("uid_map %q", out)
	}
}

func TestMounts(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "f"), []byte("from host"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, []string{"sh", "-c", `cat /data/f; touch /ro/x 2>/dev/null && echo ro-writable; echo ok > /scratch/y && cat /scratch/y; grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs; touch / 2>/dev/null || echo root-ro`},
		func(s *specs.Spec) {
			s.Root.Readonly = true
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/data", Type: "bind", Source: host, Options: []string{"rbind"}},
				specs.Mount{Destination: "/ro", Type: "bind", Source: host, Options: []string{"bind", "ro"}},
				specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
			)
		})
	want := "from hostok\ntmpfs\nroot-ro\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestMountEscapeBySymlink(t *testing.T) {
	// A symlink in the rootfs pointing out of it must not redirect a mount.
	rootfs, err := rootfsOnce()
	if err != nil {
		t.Skip(err)
	}
	victim := t.TempDir()
	link := filepath.Join(rootfs, "escape-"+strconv.Itoa(os.Getpid()))
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(link)
	// The run may fail (the link dangles inside the root); it must not
	// create anything outside.
	run(t, newBundle(t, []string{"true"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/" + filepath.Base(link) + "/sub", Type: "tmpfs", Source: "tmpfs"})
	}))
	if _, err := os.Stat(filepath.Join(victim, "sub")); err == nil {
		t.Errorf("the mount point was created outside the rootfs, in %s", victim)
	}
}

func TestDevices(t *testing.T) {
	major, minor := int64(1), int64(3)
	mode := os.FileMode(0o600)
	out := mustRun(t, []string{"sh", "-c", `echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c; ls -l /dev/mynull | cut -c1-10; readlink /dev/fd; readlink /dev/stdout; readlink /dev/ptmx; mknod /tmp/sda b 8 0 && head -c1 /tmp/sda >/dev/null 2>&1 || echo sda-denied`},
		func(s *specs.Spec) {
			s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/mynull", Type: "c", Major: major, Minor: minor, FileMode: &mode})
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rwm"})
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		})
	// A device the container makes itself is not in its device cgroup.
	want := "null-ok\n4\ncrw-------\n/proc/self/fd\n/proc/self/fd/1\npts/ptmx\nsda-denied\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

// cgroupFile reads a cgroup file of a running container: v1 is
// "controller/file", v2 the file's name on a unified host.
func cgroupFile(t *testing.T, id, v1, v2 string) string {
	t.Helper()
	var p string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		p = filepath.Join("/sys/fs/cgroup/berth", id, v2)
	} else {
		p = filepath.Join("/sys/fs/cgroup", v1)
		p = filepath.Join(filepath.Dir(p), "berth", id, filepath.Base(p))
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return strings.TrimSpace(string(b))
}

func TestCgroupLimits(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	id := containerID(t)
	mem := int64(64 << 20)
	shares, quota, period := uint64(512), int64(50000), uint64(100000)
	pids := int64(42)
	bundle := newBundle(t, []string{"sleep", "1000"}, func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
		s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0"}
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	})
	c, err := runtime.Create(ctx, id, bundle, runtime.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	defer c.Delete(ctx, true)
	for _, tc := range []struct{ v1, v2, want string }{
		{"memory/memory.limit_in_bytes", "memory.max", strconv.FormatInt(mem, 10)},
		{"cpu/cpu.cfs_quota_us", "cpu.max", "50000"},
		{"pids/pids.max", "pids.max", "42"},
		{"cpuset/cpuset.cpus", "cpuset.cpus", "0"},
	} {
		got := cgroupFile(t, id, tc.v1, tc.v2)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s = %q, want %q", tc.v1, got, tc.want)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		if got := cgroupFile(t, id, "cpu/cpu.shares", ""); got != "512" {
			t.Errorf("cpu.shares = %q", got)
		}
	}
	// The init is in the cgroup.
	procs := cgroupFile(t, id, "memory/cgroup.procs", "cgroup.procs")
	if procs != strconv.Itoa(c.Pid()) {
		t.Errorf("cgroup.procs = %q, want %d", procs, c.Pid())
	}
	st, err := c.Stats(ctx)
	if err != nil || st.PidsStats.Limit != 42 {
		t.Errorf("stats: %+v %v", st.PidsStats, err)
	}
}

func TestOOMReported(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	id := containerID(t)
	mem := int64(16 << 20)
	bundle := newBundle(t, []string{"sh", "-c", "tail /dev/zero"}, func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem, Swap: &mem}
	})
	c, err := runtime.Create(ctx, id, bundle, runtime.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(ctx, true)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	code, err := c.Wait(ctx)
	if err != nil || code != 137 {
		t.Errorf("exit %d %v, want 137 (SIGKILL by the OOM killer)", code, err)
	}
	n, err := c.OOMKills(ctx)
	if err != nil || n < 1 {
		t.Errorf("OOM kills: %d %v, want at least 1", n, err)
	}
}

func TestHooks(t *testing.T) {
	dir := t.TempDir()
	hook := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", fmt.Sprintf("cat > %s/%s", dir, name)}}
	}
	out := mustRun(t, []string{"cat", "/tmp/started"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			CreateRuntime:   []specs.Hook{hook("createRuntime")},
			CreateContainer: []specs.Hook{hook("createContainer")},
			StartContainer:  []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo in-container > /tmp/started"}}},
			Poststart:       []specs.Hook{hook("poststart")},
			Poststop:        []specs.Hook{hook("poststop")},
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
	})
	if out != "in-container\n" {
		t.Errorf("startContainer hook: %q", out)
	}
	for _, h := range []string{"createRuntime", "createContainer", "poststart", "poststop"} {
		b, err := os.ReadFile(filepath.Join(dir, h))
		if err != nil {
			t.Errorf("%s hook did not run: %v", h, err)
			continue
		}
		if !strings.Contains(string(b), `"ociVersion"`) || !strings.Contains(string(b), `"id"`) {
			t.Errorf("%s hook got %q on stdin, want the state", h, b)
		}
	}
}

func TestProcessSettings(t *testing.T) {
	umask := uint32(0o077)
	out := mustRun(t, []string{"sh", "-c", `id; pwd; echo $FOO; umask; ulimit -n; cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status`},
		func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 20}, Umask: &umask}
			s.Process.Cwd = "/tmp"
			s.Process.Env = append(s.Process.Env, "FOO=bar")
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 512, Soft: 256}}
			adj := 100
			s.Process.OOMScoreAdj = &adj
		})
	want := "uid=1000 gid=1000 groups=10,20\n/tmp\nbar\n0077\n256\n100\nNoNewPrivs:\t1\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestCapabilities(t *testing.T) {
	out := mustRun(t, []string{"grep", "^Cap", "/proc/self/status"}, func(s *specs.Spec) {
		caps := []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps, Inheritable: caps, Ambient: caps}
	})
	// CAP_KILL is 5, CAP_NET_BIND_SERVICE 10: 0x420.
	for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if !strings.Contains(out, set+":\t0000000000000420") {
			t.Errorf("%s not 0x420 in\n%s", set, out)
		}
	}
}

func TestSeccompFilter(t *testing.T) {
	errno := uint(1)
	out := mustRun(t, []string{"sh", "-c", "mkdir /tmp/a 2>&1; echo x > /tmp/b && echo write-ok"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &errno},
			},
		}
	})
	if !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "write-ok") {
		t.Errorf("output %q", out)
	}
}

func TestTerminalNeedsConsoleSocket(t *testing.T) {
	root := t.TempDir()
	bundle := newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Process.Terminal = true })
	_, err := runtime.Create(context.Background(), containerID(t), bundle, runtime.Options{Root: root})
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("err %v, want invalid argument", err)
	}
	assertNothingLeft(t, root, containerID(t), "")
}

func TestBadInput(t *testing.T) {
	rootfs, _ := rootfsOnce()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string // returns the bundle
		code  int                       // ProcessError code, or 0 for another error
		class error
		msg   string
	}{
		{"malformed config", func(t *testing.T) string {
			b := newBundle(t, []string{"true"}, nil)
			os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion": "1.2.0", "process": {`), 0o644)
			return b
		}, 0, errdefs.ErrInvalidArgument, "malformed config.json"},
		{"missing rootfs", func(t *testing.T) string {
			return newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Root.Path = "/nonexistent/rootfs" })
		}, 0, errdefs.ErrNotFound, "rootfs"},
		{"unknown namespace", func(t *testing.T) string {
			return newBundle(t, []string{"true"}, func(s *specs.Spec) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
			})
		}, 0, errdefs.ErrInvalidArgument, "unknown namespace"},
		{"hostname without a UTS namespace", func(t *testing.T) string {
			return newBundle(t, []string{"true"}, func(s *specs.Spec) {
				s.Hostname = "evil"
				s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}
			})
		}, 0, errdefs.ErrInvalidArgument, "UTS namespace"},
		{"unknown version", func(t *testing.T) string {
			return newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Version = "invalid" })
		}, 0, errdefs.ErrInvalidArgument, "ociVersion"},
		{"host sysctl", func(t *testing.T) string {
			return newBundle(t, []string{"true"}, func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "0"} })
		}, 0, errdefs.ErrInvalidArgument, "not namespaced"},
		{"not found", func(t *testing.T) string {
			return newBundle(t, []string{"no-such-command"}, nil)
		}, 127, nil, "not found"},
		{"not executable", func(t *testing.T) string {
			return newBundle(t, []string{"/bin/notexec"}, nil)
		}, 126, nil, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			id := containerID(t)
			_, err := runtime.Create(context.Background(), id, tc.setup(t), runtime.Options{Root: root})
			if err == nil {
				t.Fatal("create succeeded")
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q: want one line mentioning %q", err, tc.msg)
			}
			var pe *runtime.ProcessError
			if tc.code != 0 && (!errors.As(err, &pe) || pe.ExitCode() != tc.code) {
				t.Errorf("error %v: want exit code %d", err, tc.code)
			}
			if tc.class != nil && !errors.Is(err, tc.class) {
				t.Errorf("error %v: want class %v", err, tc.class)
			}
			assertNothingLeft(t, root, id, rootfs)
		})
	}
}

func TestExec(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	id := containerID(t)
	c, err := runtime.Create(ctx, id, newBundle(t, []string{"sleep", "1000"}, func(s *specs.Spec) { s.Hostname = "execbox" }), runtime.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	defer c.Delete(ctx, true)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r, w, _ := os.Pipe()
	p, err := c.Exec(ctx, &specs.Process{
		Args: []string{"sh", "-c", "hostname; echo $$; exit 5"},
		Env:  []string{"PATH=/bin"},
		Cwd:  "/",
	}, runtime.ExecOptions{Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait()
	if err != nil || code != 5 {
		t.Errorf("exec exit %d %v, want 5", code, err)
	}
	b := make([]byte, 100)
	n, _ := r.Read(b)
	lines := strings.Fields(string(b[:n]))
	if len(lines) != 2 || lines[0] != "execbox" || lines[1] == "1" {
		t.Errorf("exec output %q", b[:n])
	}
}

// consoleSocket listens on a unix socket like a console-socket client
// (conmon, podman) and returns the pty master it receives.
func consoleSocket(t *testing.T) (string, <-chan *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *os.File, 1)
	go func() {
		defer unix.Close(fd)
		conn, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			close(ch)
			return
		}
		defer unix.Close(conn)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := unix.Recvmsg(conn, make([]byte, 64), oob, 0)
		if err != nil {
			close(ch)
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) == 1 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				ch <- os.NewFile(uintptr(fds[0]), "pty-master")
				return
			}
		}
		close(ch)
	}()
	return path, ch
}

func TestTerminal(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	sock, masters := consoleSocket(t)
	c, err := runtime.Create(ctx, containerID(t), newBundle(t, []string{"sh", "-c", "tty; test -t 0 && echo is-a-tty"}, func(s *specs.Spec) {
		s.Process.Terminal = true
	}), runtime.Options{Root: root, ConsoleSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(ctx, true)
	master := <-masters
	if master == nil {
		t.Fatal("no pty master received")
	}
	defer master.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(ctx); err != nil || code != 0 {
		t.Errorf("exit %d %v", code, err)
	}
	buf := make([]byte, 256)
	n, _ := master.Read(buf)
	out := strings.ReplaceAll(string(buf[:n]), "\r", "")
	if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "is-a-tty") {
		t.Errorf("output %q", out)
	}
}

// TestReexecInit runs the main tests again with the init that re-executes
// the runtime (package initproc), which containers the fast path does not
// cover (user namespaces, terminals, container hooks) and exec use.
func TestReexecInit(t *testing.T) {
	t.Setenv("BERTH_RUNTIME_REEXEC_INIT", "1")
	for name, f := range map[string]func(*testing.T){
		"RunOutputAndExitCode": TestRunOutputAndExitCode, "Lifecycle": TestLifecycle,
		"Namespaces": TestNamespaces, "Mounts": TestMounts, "Devices": TestDevices,
		"CgroupLimits": TestCgroupLimits, "ProcessSettings": TestProcessSettings,
		"Capabilities": TestCapabilities, "SeccompFilter": TestSeccompFilter,
		"BadInput": TestBadInput, "Security": TestSecurity, "NoHostFDLeak": TestNoHostFDLeak,
		"RuntimeHooks": TestRuntimeHooks, "NoPivot": TestNoPivot,
	} {
		t.Run(name, f)
	}
}

// TestRuntimeHooks runs the hooks that run in the runtime's namespaces
// only, which the fast path handles itself.
func TestRuntimeHooks(t *testing.T) {
	dir := t.TempDir()
	hook := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", fmt.Sprintf("cat > %s/%s", dir, name)}}
	}
	mustRun(t, []string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			CreateRuntime: []specs.Hook{hook("createRuntime")},
			Poststart:     []specs.Hook{hook("poststart")},
			Poststop:      []specs.Hook{hook("poststop")},
		}
	})
	for _, h := range []string{"createRuntime", "poststart", "poststop"} {
		if b, err := os.ReadFile(filepath.Join(dir, h)); err != nil || !strings.Contains(string(b), `"pid"`) {
			t.Errorf("%s hook: %q %v", h, b, err)
		}
	}
	// A failing createRuntime hook fails the create, and leaves nothing.
	root := t.TempDir()
	id := containerID(t)
	_, err := runtime.Create(context.Background(), id, newBundle(t, []string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
	}), runtime.Options{Root: root})
	if err == nil || !strings.Contains(err.Error(), "createRuntime") {
		t.Errorf("failing hook: %v", err)
	}
	assertNothingLeft(t, root, id, "")
}

func TestNoPivot(t *testing.T) {
	bundle := newBundle(t, []string{"sh", "-c", "cat /proc/self/mountinfo | head -1"}, nil)
	root := t.TempDir()
	outR, outW, _ := os.Pipe()
	code, err := runtime.Run(context.Background(), containerID(t), bundle, runtime.Options{Root: root, NoPivot: true, Stdout: outW})
	outW.Close()
	b := make([]byte, 512)
	n, _ := outR.Read(b)
	if err != nil || code != 0 || n == 0 {
		t.Errorf("run: %d %v %q", code, err, b[:n])
	}
}
