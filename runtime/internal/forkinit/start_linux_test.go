package forkinit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/runtime/internal/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// These tests start real children: root, a kernel with clone3, and a
// static busybox.

var busyboxRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "forkinit-test-rootfs-")
	if err != nil {
		return "", err
	}
	if err := testutil.BusyboxRoot(dir); err != nil {
		return "", err
	}
	return dir, nil
})

func needRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes namespaces and mounts")
	}
	dir, err := busyboxRoot()
	if err != nil {
		t.Skip("no busybox root:", err)
	}
	return dir
}

// child is a started program, waiting for start.
type child struct {
	pid, pidfd int
	shared     bool
	sync       *os.File
	out        *os.File
}

// start builds and starts a container (new PID and mount namespaces) that
// runs args in the busybox root, changed by edit, and waits for it to be
// ready. The program is dropped once it is started: what the child uses
// must outlive it.
func start(t *testing.T, args []string, edit func(*initproc.Config)) (*child, weak.Pointer[Program]) {
	t.Helper()
	return startFlags(t, 0, args, edit)
}

// startFlags is start with more clone flags.
func startFlags(t *testing.T, flags uintptr, args []string, edit func(*initproc.Config)) (*child, weak.Pointer[Program]) {
	t.Helper()
	needRoot(t)
	c, p, err := tryStart(t, flags, args, edit)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// tryStart is start that returns its errors, for other goroutines than
// the test's.
func tryStart(t *testing.T, flags uintptr, args []string, edit func(*initproc.Config)) (*child, weak.Pointer[Program], error) {
	c, p, err := launch(t, flags, args, edit)
	if err != nil {
		return nil, weak.Pointer[Program]{}, err
	}
	m, err := p.ReadMessage(c.sync)
	if err != nil || !m.Ready {
		return nil, weak.Pointer[Program]{}, fmt.Errorf("child not ready: %+v %v", m, err)
	}
	return c, weak.Make(p), nil
}

// launch builds and starts the container, and returns at once.
func launch(t *testing.T, flags uintptr, args []string, edit func(*initproc.Config)) (*child, *Program, error) {
	rootfs, err := busyboxRoot()
	if err != nil {
		return nil, nil, err
	}
	c := &initproc.Config{
		Mode: initproc.ModeCreate,
		Spec: &specs.Spec{
			Root: &specs.Root{Path: rootfs},
			Mounts: []specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
			},
			Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}}},
		},
		Process:    &specs.Process{Args: args, Env: []string{"PATH=/bin"}, Cwd: "/"},
		Rootfs:     rootfs,
		OwnMountNS: true,
		FifoFD:     -1, ConsoleFD: -1, MountNSFD: -1,
	}
	if edit != nil {
		edit(c)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	syncParent, syncChild := os.NewFile(uintptr(pair[0]), "sync"), os.NewFile(uintptr(pair[1]), "sync-child")
	defer syncChild.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer outW.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, err
	}
	defer null.Close()
	files := []*os.File{null, outW, outW, syncChild}
	p, err := Build(c, len(files), 3, nil)
	if err != nil {
		return nil, nil, err
	}
	runtime.LockOSThread()
	pid, pidfd, err := p.Start(flags|unix.CLONE_NEWPID|unix.CLONE_NEWNS, files, -1)
	runtime.UnlockOSThread()
	if err != nil {
		return nil, nil, err
	}
	ch := &child{pid: pid, pidfd: pidfd, shared: p.shared, sync: syncParent, out: outR}
	t.Cleanup(func() {
		unix.PidfdSendSignal(ch.pidfd, unix.SIGKILL, nil, 0)
		ch.wait()
		syncParent.Close()
		outR.Close()
	})
	return ch, p, nil
}

// run tells the child to go on, and returns its output and exit status.
func (c *child) run() (string, int, error) {
	if err := Answer(c.sync, true); err != nil {
		return "", 0, err
	}
	// It execs: its end closes, with no message.
	var buf [16]byte
	if n, err := io.ReadFull(c.sync, buf[:]); err != io.EOF {
		return "", 0, fmt.Errorf("sync after start: %d bytes, %v", n, err)
	}
	out, err := io.ReadAll(c.out)
	if err != nil {
		return "", 0, err
	}
	code, err := c.wait()
	return string(out), code, err
}

func (c *child) wait() (int, error) {
	if c.pidfd < 0 {
		return 0, errors.New("reaped already")
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		unix.Close(c.pidfd)
		c.pidfd = -1
		if err != nil {
			return 0, err
		}
		return ws.ExitStatus(), nil
	}
}

// sharesMemory reports whether pid and this process share their memory
// (kcmp KCMP_VM), or skips the test.
func sharesMemory(t *testing.T, pid int) bool {
	t.Helper()
	const kcmpVM = 1
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(pid), kcmpVM, 0, 0, 0)
	if e != 0 {
		t.Skip("kcmp:", e)
	}
	return r == 0
}

func TestStartShared(t *testing.T) {
	c, _ := start(t, []string{"sh", "-c", "echo hello $$"}, nil)
	if c.shared != canShare {
		t.Errorf("shared %v, want %v on this build", c.shared, canShare)
	}
	if got := sharesMemory(t, c.pid); got != canShare {
		t.Errorf("child shares the parent's memory: %v, want %v", got, canShare)
	}
	// It waits with every signal blocked and, shared, none handled (the Go
	// runtime's handlers would run Go code on the child's stack).
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SigBlk:\tfffffffffffbfeff", "SigCgt:\t0000000000000000"} {
		if c.shared && !strings.Contains(string(status), want+"\n") {
			t.Errorf("no %q in the waiting child's status:\n%s", want, status)
		}
	}
	out, code, err := c.run()
	if err != nil || code != 0 || out != "hello 1\n" {
		t.Fatalf("output %q, status %d, %v", out, code, err)
	}
}

// A child in a new time namespace is forked (before Linux 6.0, one that
// shares its parent's memory would not enter it).
func TestStartTimeNamespaceForks(t *testing.T) {
	c, _ := startFlags(t, unix.CLONE_NEWTIME, []string{"echo", "in time"}, nil)
	if c.shared {
		t.Error("a child in a new time namespace shares the parent's memory")
	}
	out, code, err := c.run()
	if err != nil || code != 0 || out != "in time\n" {
		t.Fatalf("output %q, status %d, %v", out, code, err)
	}
}

func TestStartPlainFork(t *testing.T) {
	t.Setenv(EnvPlainFork, "1")
	c, _ := start(t, []string{"echo", "forked"}, nil)
	if c.shared || sharesMemory(t, c.pid) {
		t.Error("the child shares the parent's memory with " + EnvPlainFork + " set")
	}
	out, code, err := c.run()
	if err != nil || code != 0 || out != "forked\n" {
		t.Fatalf("output %q, status %d, %v", out, code, err)
	}
}

// A child that sets its oom_score_adj is forked: the kernel would set it on
// this process too.
func TestStartOOMScoreAdjForks(t *testing.T) {
	before, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	adj := 500
	c, _ := start(t, []string{"cat", "/proc/self/oom_score_adj"}, func(c *initproc.Config) { c.Process.OOMScoreAdj = &adj })
	if c.shared {
		t.Error("a child that sets oom_score_adj shares the parent's memory")
	}
	out, code, err := c.run()
	if err != nil || code != 0 || out != "500\n" {
		t.Fatalf("output %q, status %d, %v", out, code, err)
	}
	if after, _ := os.ReadFile("/proc/self/oom_score_adj"); !bytes.Equal(after, before) {
		t.Errorf("this process's oom_score_adj went from %q to %q", before, after)
	}
}

// A child that shares this process's memory may wait long for its start
// after the program is dropped (as the engine does: it releases the
// container, and starts it later through the exec FIFO). What it uses
// stays allocated, however hard the collector works meanwhile, until it
// has exec'd; then it goes.
func TestLeaseOutlivesProgram(t *testing.T) {
	c, prog := start(t, []string{"sh", "-c", "echo still here"}, nil)
	if !c.shared {
		t.Skip("the child does not share memory here")
	}
	churn(10)
	if prog.Value() == nil {
		t.Fatal("the program of a child that has not exec'd was freed")
	}
	out, code, err := c.run()
	if err != nil || code != 0 || out != "still here\n" {
		t.Fatalf("output %q, status %d, %v", out, code, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for prog.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the program of a child that exec'd is still allocated")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// churn collects garbage n times, allocating what reuses freed memory in
// between.
func churn(n int) {
	var sink [][]byte
	for i := 0; i < n; i++ {
		for _, size := range []int{16, 64, 256, 4096, 16 << 10, 64 << 10} {
			for j := 0; j < 64; j++ {
				b := make([]byte, size)
				for k := range b {
					b[k] = 0xa5
				}
				sink = append(sink, b)
			}
		}
		sink = sink[:0]
		runtime.GC()
	}
}

// Many children at once, from several goroutines, while others allocate,
// check what they allocated, and collect garbage: every child runs its
// process, and this process's memory is intact.
func TestStartConcurrent(t *testing.T) {
	needRoot(t)
	const starters, each = 4, 12
	stop := make(chan struct{})
	var bad sync.Once
	var corrupt error
	var workers sync.WaitGroup
	for w := 0; w < 3; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				m := map[int]string{}
				var nums []uint64
				for i := 0; i < 2000; i++ {
					m[i] = strconv.Itoa(i * round)
					nums = append(nums, uint64(i)*0x9e3779b97f4a7c15)
				}
				if round%4 == 0 {
					runtime.GC()
				}
				for i := 0; i < 2000; i++ {
					if m[i] != strconv.Itoa(i*round) || nums[i] != uint64(i)*0x9e3779b97f4a7c15 {
						bad.Do(func() { corrupt = fmt.Errorf("round %d: entry %d is %q, %#x", round, i, m[i], nums[i]) })
					}
				}
			}
		}()
	}
	errs := make(chan error, starters*each)
	var starts sync.WaitGroup
	for s := 0; s < starters; s++ {
		starts.Add(1)
		go func() {
			defer starts.Done()
			for i := 0; i < each; i++ {
				word := fmt.Sprintf("child-%d-%d", s, i)
				c, _, err := tryStart(t, 0, []string{"echo", word}, nil)
				if err != nil {
					errs <- err
					continue
				}
				// Some wait while the others start and the collector runs.
				if i%3 == 0 {
					runtime.GC()
				}
				out, code, err := c.run()
				if err == nil && (code != 0 || out != word+"\n") {
					err = fmt.Errorf("%s: output %q, status %d", word, out, code)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	starts.Wait()
	close(stop)
	workers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if corrupt != nil {
		t.Fatal("this process's memory changed under it:", corrupt)
	}
}

// A failing child reports the failing step by its index, and its exit
// status, shared or not.
func TestStartFailureReported(t *testing.T) {
	needRoot(t)
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprint("plain=", plain), func(t *testing.T) {
			if plain {
				t.Setenv(EnvPlainFork, "1")
			}
			for _, tc := range []struct {
				edit func(*initproc.Config)
				msg  string
				code int
			}{
				{func(c *initproc.Config) { c.Spec.Linux.Sysctl = map[string]string{"no.such.key": "1"} }, "set sysctl no.such.key: no such file or directory", 1},
				{func(c *initproc.Config) { c.Process.Args = []string{"nosuchcommand"} }, `exec: "nosuchcommand": executable file not found`, 127},
			} {
				c, p, err := launch(t, 0, []string{"true"}, tc.edit)
				if err != nil {
					t.Fatal(err)
				}
				m, err := p.ReadMessage(c.sync)
				if err != nil || m.Err == nil || m.Err.Error() != tc.msg || m.Code != tc.code {
					t.Errorf("message %+v, %v; want %q, status %d", m, err, tc.msg, tc.code)
				}
				if code, err := c.wait(); err != nil || code != tc.code {
					t.Errorf("exit status %d, %v; want %d", code, err, tc.code)
				}
			}
		})
	}
}

// The child that shares this process's memory runs on a stack that is
// not its goroutine's, with the parent thread's g: what it runs must not
// check its stack against the goroutine's bounds (nor grow it), nor use g,
// nor call anything but itself and raw system calls. The machine code says
// whether it does.
func TestChildCode(t *testing.T) {
	if !canShare {
		t.Skip("the child does not share memory here")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to disassemble with")
	}
	if testing.Short() {
		t.Skip("builds the package's tests again")
	}
	// Test binaries run by go test have no symbol table: build one with.
	exe := filepath.Join(t.TempDir(), "forkinit.test")
	if out, err := exec.Command(goBin, "test", "-c", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	funcs := `^(github\.com/berth-dev/berth/runtime/internal/forkinit\.(cloneVM\.abi0|runOps\.abi0|runOps|step|moveFD)|` +
		`golang\.org/x/sys/unix\.RawSyscall6?\.abi0|syscall\.RawSyscall6?(\.abi0)?|internal/runtime/syscall/linux\.Syscall6)$`
	out, err := exec.Command(goBin, "tool", "objdump", "-s", funcs, exe).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	allowed := regexp.MustCompile(funcs)
	seen := map[string]bool{}
	var fn string
	for _, line := range strings.Split(string(out), "\n") {
		if f, ok := strings.CutPrefix(line, "TEXT "); ok {
			fn, _, _ = strings.Cut(f, "(SB)")
			seen[fn] = true
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		inst := strings.Join(f[3:], " ")
		switch {
		case strings.Contains(inst, "morestack"):
			t.Errorf("%s grows its stack: %s", fn, line)
		case strings.Contains(inst, "(R14)"):
			t.Errorf("%s uses g: %s", fn, line)
		case strings.HasPrefix(inst, "CALL ") || strings.HasPrefix(inst, "JMP ") && strings.Contains(inst, "(SB)"):
			target, _, _ := strings.Cut(strings.Fields(inst)[1], "(SB)")
			// A failed bounds check would need g; runOps's loop keeps
			// its index in bounds.
			if !allowed.MatchString(target) && !(fn == "github.com/berth-dev/berth/runtime/internal/forkinit.runOps" && target == "runtime.panicBounds") {
				t.Errorf("%s calls %s", fn, target)
			}
		}
	}
	for _, f := range []string{"runOps", "runOps.abi0", "step", "moveFD", "cloneVM.abi0"} {
		if !seen["github.com/berth-dev/berth/runtime/internal/forkinit."+f] {
			t.Errorf("no %s in the disassembly", f)
		}
	}
}
