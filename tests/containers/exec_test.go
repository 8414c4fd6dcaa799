package containers

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestExec runs processes in a running container: in its namespaces,
// with its environment, working directory and user unless overridden, and
// with the exit statuses Docker gives.
func TestExec(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "ex", "--hostname", "exhost", "-e", "FOO=container", "-w", "/tmp", "busybox", "sleep", "1000")

	// The container's UTS and PID namespaces, not the host's.
	out := e.must("exec", "ex", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '")
	lines := strings.Split(out, "\n")
	host, _ := os.Hostname()
	if len(lines) != 2 || lines[0] != "exhost" || strings.TrimSpace(lines[1]) != "sleep 1000" {
		t.Errorf("exec sees hostname and PID 1 %q, want exhost and sleep 1000 (the host is %q)", out, host)
	}

	// Inherited: env, cwd, user.
	if out := e.must("exec", "ex", "sh", "-c", "echo $FOO; pwd; id -u"); out != "container\n/tmp\n0" {
		t.Errorf("exec inherits env, cwd and user as %q, want container, /tmp, 0", out)
	}
	// Overridden: -e, --env-file, -w, -u.
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\nBAR=fromfile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = e.must("exec", "-e", "FOO=exec", "--env-file", envFile, "-w", "/etc", "-u", "nobody", "ex", "sh", "-c", "echo $FOO $BAR; pwd; id -un; id -u; echo $HOME")
	if want := "exec fromfile\n/etc\nnobody\n65534\n" + nobodyHome(t, e); out != want {
		t.Errorf("exec with -e, --env-file, -w, -u printed %q", out)
	}
	if out := e.must("exec", "-u", "1234:5678", "ex", "id"); !strings.Contains(out, "uid=1234") || !strings.Contains(out, "gid=5678") {
		t.Errorf("exec -u 1234:5678 ran as %q", out)
	}

	// Input with -i.
	if res := e.RunInput(strings.NewReader("hello from stdin\n"), "exec", "-i", "ex", "cat"); res.Code != 0 || res.Stdout != "hello from stdin\n" {
		t.Errorf("exec -i cat: %s", res)
	}

	// Exit statuses: the process's own, 126 and 127 as Docker words them.
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"true"}, 0, ""},
		{[]string{"sh", "-c", "exit 3"}, 3, ""},
		{[]string{"/etc/passwd"}, 126, "permission denied"},
		{[]string{"nosuchcommand"}, 127, `exec: "nosuchcommand": executable file not found in $PATH`},
	} {
		res := e.run(append([]string{"exec", "ex"}, c.args...)...)
		if res.Code != c.code || !strings.Contains(res.Stderr, c.msg) {
			t.Errorf("exec %v: %s\nwant exit code %d and %q", c.args, res, c.code, c.msg)
		}
		if c.msg != "" && !strings.HasPrefix(res.Stderr, "OCI runtime exec failed: ") {
			t.Errorf("exec %v: stderr %q does not read as Docker's", c.args, res.Stderr)
		}
	}

	// --privileged gives every capability; the default set lacks SYS_ADMIN.
	capEff := func(args ...string) uint64 {
		out := e.must(append(append([]string{"exec"}, args...), "ex", "grep", "CapEff", "/proc/self/status")...)
		n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(out, "CapEff:")), 16, 64)
		if err != nil {
			t.Fatalf("CapEff line %q: %v", out, err)
		}
		return n
	}
	const capSysAdmin = 1 << 21
	if capEff()&capSysAdmin != 0 || capEff("--privileged")&capSysAdmin == 0 {
		t.Errorf("exec: CAP_SYS_ADMIN without and with --privileged: %x %x", capEff(), capEff("--privileged"))
	}

	// A stopped container refuses exec.
	e.must("create", "--name", "created", "busybox")
	if res := e.run("exec", "created", "true"); res.Code != 125 || !strings.Contains(res.Stderr, "is not running") {
		t.Errorf("exec in a created container: %s", res)
	}
	if res := e.run("exec", "nosuch", "true"); res.Code != 125 || !strings.Contains(res.Stderr, "No such container") {
		t.Errorf("exec in a missing container: %s", res)
	}
}

// TestExecDetachAndTop starts a process with exec -d and finds it with
// top, which lists only the container's processes.
func TestExecDetachAndTop(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "tp", "busybox", "sleep", "1001")
	if out := e.must("exec", "-d", "tp", "sleep", "1002"); out != "" {
		t.Errorf("exec -d printed %q", out)
	}
	var top string
	e.waitFor("top lists the exec'd process", func() bool {
		top = e.must("top", "tp")
		return strings.Contains(top, "sleep 1002")
	})
	lines := strings.Split(top, "\n")
	if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}) {
		t.Errorf("top header %q, want ps -ef's", lines[0])
	}
	if len(lines) != 3 || !strings.Contains(top, "sleep 1001") {
		t.Errorf("top lists:\n%s\nwant the init and the exec'd process only", top)
	}
	// The exec'd process is in the container: its PID is in the cgroup
	// as the host sees it, and ps options pass through.
	pidTop := e.must("top", "tp", "-o", "pid,args")
	if !strings.HasPrefix(pidTop, "PID") || !strings.Contains(pidTop, "sleep 1002") {
		t.Errorf("top tp -o pid,args:\n%s", pidTop)
	}
	e.must("stop", "-t", "0", "tp")
	if res := e.run("top", "tp"); res.Code != 125 || !strings.Contains(res.Stderr, "is not running") {
		t.Errorf("top of a stopped container: %s", res)
	}
}

// TestStats prints one row of the container's resource use.
func TestStats(t *testing.T) {
	e := newEnv(t)
	id := e.must("run", "-d", "--name", "st", "busybox", "sleep", "1003")
	out := e.must("stats", "--no-stream", "st")
	lines := strings.Split(out, "\n")
	if len(lines) != 2 {
		t.Fatalf("stats --no-stream printed:\n%s\nwant a header and one row", out)
	}
	for _, col := range []string{"CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("stats header %q lacks %q", lines[0], col)
		}
	}
	if !strings.HasPrefix(lines[1], id[:12]) || !strings.Contains(lines[1], " st ") {
		t.Errorf("stats row %q does not name the container", lines[1])
	}
	row := e.must("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", "st")
	f := strings.Split(row, "|")
	if len(f) != 4 || f[0] != "st" || f[2] != "1" || !strings.HasSuffix(f[3], "%") {
		t.Fatalf("stats --format row %q", row)
	}
	usage := strings.TrimSpace(strings.Split(f[1], "/")[0])
	if usage == "" || strings.HasPrefix(usage, "0B") {
		t.Errorf("stats memory usage %q, want more than nothing", f[1])
	}
	// Without arguments: the running containers; -a adds the others.
	e.must("create", "--name", "idle", "busybox")
	if out := e.must("stats", "--no-stream", "--format", "{{.Name}}"); out != "st" {
		t.Errorf("stats --no-stream lists %q, want st", out)
	}
	if out := strings.Fields(e.must("stats", "--no-stream", "-a", "--format", "{{.Name}}")); len(out) != 2 {
		t.Errorf("stats -a lists %q, want st and idle", out)
	}
}

// TestExecTerminal gives the process a terminal of the container's own
// devpts: it is a tty there, output comes through the pty (with its
// carriage returns) and the exit status is the process's.
func TestExecTerminal(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "tt", "busybox", "sleep", "1008")
	res := e.run("exec", "-t", "tt", "sh", "-c", "tty; echo $TERM; exit 5")
	if res.Code != 5 {
		t.Fatalf("exec -t: %s\nwant exit code 5", res)
	}
	if res.Stdout != "/dev/pts/0\r\nxterm\r\n" {
		t.Errorf("exec -t printed %q, want the container's /dev/pts/0 and TERM=xterm through a pty", res.Stdout)
	}
	// The host sees no new pty: the pair lives in the container's devpts.
	if out := e.must("exec", "tt", "ls", "/dev/pts"); !strings.Contains(out, "ptmx") {
		t.Errorf("the container's /dev/pts holds %q", out)
	}
}

// TestExecExternalRuntime runs exec, exec -t, exec -d and top through
// runc's command line, when runc is installed.
func TestExecExternalRuntime(t *testing.T) {
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed")
	}
	e := newEnv(t)
	e.must("run", "-d", "--runtime", "runc", "--name", "rc", "--hostname", "rchost", "busybox", "sleep", "1009")
	if res := e.run("exec", "rc", "sh", "-c", "hostname; exit 3"); res.Code != 3 || res.Stdout != "rchost\n" {
		t.Errorf("exec with runc: %s\nwant rchost and exit code 3", res)
	}
	if res := e.run("exec", "-t", "rc", "sh", "-c", "tty; exit 4"); res.Code != 4 || !strings.HasPrefix(res.Stdout, "/dev/pts/") {
		t.Errorf("exec -t with runc: %s\nwant a pts and exit code 4", res)
	}
	if res := e.run("exec", "rc", "nosuchcommand"); res.Code != 127 || !strings.Contains(res.Stderr, "OCI runtime exec failed") {
		t.Errorf("exec of a missing command with runc: %s\nwant exit code 127", res)
	}
	if res := e.run("exec", "rc", "sh", "-c", "exit 255"); res.Code != 255 {
		t.Errorf("exec of a process exiting 255 with runc: %s", res)
	}
	e.must("exec", "-d", "rc", "sleep", "1010")
	e.waitFor("top lists the process runc exec'd", func() bool {
		return strings.Contains(e.must("top", "rc"), "sleep 1010")
	})
}

// nobodyHome is the home directory of nobody in the busybox image.
func nobodyHome(t *testing.T, e *env) string {
	t.Helper()
	for _, l := range strings.Split(e.must("exec", "ex", "cat", "/etc/passwd"), "\n") {
		if f := strings.Split(l, ":"); len(f) >= 7 && f[0] == "nobody" {
			return f[5]
		}
	}
	t.Fatal("no nobody in the busybox image's /etc/passwd")
	return ""
}

// TestExecDetachedIsReaped: a detached exec's process is a child of the
// container's monitor (not of the short-lived CLI, whose orphans the
// host's init reaps when it gets to it), and is reaped as soon as it
// exits, with berth's runtime and with runc.
func TestExecDetachedIsReaped(t *testing.T) {
	runtimes := []string{"berth"}
	if _, err := exec.LookPath("runc"); err == nil {
		runtimes = append(runtimes, "runc")
	}
	for i, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			e := newEnv(t)
			e.must("run", "-d", "--runtime", rt, "--name", "xd", "busybox", "sleep", "1012")
			arg := strconv.Itoa(1013 + i)
			e.must("exec", "-d", "xd", "sleep", arg)
			var pid int
			e.waitFor("the detached process runs", func() bool {
				pid = processWithArgs("sleep", arg)
				return pid > 0
			})
			mons := monitorPids(e.RunRoot)
			if ppid := parentPid(t, pid); len(mons) != 1 || ppid != mons[0] {
				t.Fatalf("the detached process's parent is %d, want the monitor %v", ppid, mons)
			}
			if err := unix.Kill(pid, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			e.waitFor("the monitor reaps the detached process", func() bool {
				_, err := os.Stat("/proc/" + strconv.Itoa(pid))
				return err != nil
			})
		})
	}
}

// processWithArgs finds a process whose command line is exactly args.
func processWithArgs(args ...string) int {
	ents, _ := os.ReadDir("/proc")
	want := strings.Join(args, "\x00") + "\x00"
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline"); err == nil && string(b) == want {
			return pid
		}
	}
	return 0
}

func parentPid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
