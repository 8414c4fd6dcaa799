package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/runtime"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultContainer is what the engine runs by default: runtime.DefaultSpec
// (Docker's capabilities, no_new_privs, masked and read-only paths) with
// Docker's default seccomp profile.
func defaultContainer(t *testing.T) func(*specs.Spec) {
	return func(s *specs.Spec) {
		p, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			t.Fatalf("default seccomp profile: %v", err)
		}
		s.Linux.Seccomp = p
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
	}
}

// TestSecurity runs attempts to get out of a default container; each must
// fail.
func TestSecurity(t *testing.T) {
	hostName, _ := os.Hostname()
	for _, tc := range []struct {
		name, script string
		edit         func(*specs.Spec)
	}{
		{"see host processes", fmt.Sprintf(`test -e /proc/%d && echo ESCAPED; n=$(ls /proc | grep -c '^[0-9]'); [ "$n" -le 4 ] || echo ESCAPED $n`, os.Getpid()), nil},
		{"mount", `mount -t tmpfs none /mnt 2>/dev/null && echo ESCAPED; mount --bind /bin /mnt 2>/dev/null && echo ESCAPED`, nil},
		{"write /proc/sys", `echo 1 > /proc/sys/kernel/sysrq 2>/dev/null && echo ESCAPED; echo 1 > /proc/sysrq-trigger 2>/dev/null && echo ESCAPED`, nil},
		{"write /sys", `echo x > /sys/kernel/uevent_helper 2>/dev/null && echo ESCAPED; mkdir /sys/fs/cgroup/memory/x 2>/dev/null && echo ESCAPED`, nil},
		{"load a kernel module", `echo junk > /tmp/m.ko; insmod /tmp/m.ko 2>&1 | grep -q 'not permitted' || echo ESCAPED`, nil},
		{"raw socket without CAP_NET_RAW", `ping -c1 -W1 127.0.0.1 2>&1 | grep -qi 'permission denied\|not permitted' || echo ESCAPED`, func(s *specs.Spec) {
			c := s.Process.Capabilities
			drop := func(l []string) []string {
				var out []string
				for _, x := range l {
					if x != "CAP_NET_RAW" {
						out = append(out, x)
					}
				}
				return out
			}
			c.Bounding, c.Effective, c.Permitted = drop(c.Bounding), drop(c.Effective), drop(c.Permitted)
		}},
		{"change the hostname", `hostname evil 2>/dev/null && echo ESCAPED; true`, nil},
		{"reach the host's devices", `head -c1 /dev/kmsg >/dev/null 2>&1 && echo ESCAPED; mknod /tmp/sda b 8 0 2>/dev/null && head -c1 /tmp/sda >/dev/null 2>&1 && echo ESCAPED; true`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := defaultContainer(t)
			if tc.edit != nil {
				inner := edit
				edit = func(s *specs.Spec) { inner(s); tc.edit(s) }
			}
			r := run(t, newBundle(t, []string{"sh", "-c", tc.script}, edit))
			if r.err != nil {
				t.Fatalf("run: %v", r.err)
			}
			if strings.Contains(r.stdout, "ESCAPED") {
				t.Errorf("attempt succeeded: %q", r.stdout)
			}
			if h, _ := os.Hostname(); h != hostName {
				t.Errorf("host's hostname changed to %q", h)
			}
		})
	}
}

// TestNoHostFDLeak: a descriptor the caller left inheritable does not reach
// the container's process.
func TestNoHostFDLeak(t *testing.T) {
	f, err := os.CreateTemp("", "secret")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// Clear close-on-exec, as a careless caller would leave it.
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, []string{"sh", "-c", "echo $(ls /proc/self/fd); for f in /proc/self/fd/*; do readlink $f; done; true"}, defaultContainer(t))
	if strings.Contains(out, "secret") || strings.Contains(out, f.Name()) {
		t.Errorf("host file visible in the container: %q", out)
	}
	if fds := strings.Fields(strings.SplitN(out, "\n", 2)[0]); len(fds) > 4 {
		t.Errorf("container has descriptors %v, want 0 1 2 (and ls's own)", fds)
	}
}

// TestRuntimeBinaryNotWritable covers CVE-2019-5736: a process in the
// container opens the init's executable through /proc/<pid>/exe while the
// init still runs the runtime's binary, and writes through it once the
// init has exec'd. The init runs from a read-only mount of the binary, so
// the write must fail and the binary stay as it was.
func TestRuntimeBinaryNotWritable(t *testing.T) {
	// The forked init of the fast path never shows the runtime's binary to
	// a container (it is alone in a new PID namespace until it execs, and
	// Exec refuses a container that was not started); the re-executed one
	// is what this covers.
	t.Setenv("BERTH_RUNTIME_REEXEC_INIT", "1")
	ctx := context.Background()
	root := t.TempDir()
	id := containerID(t)
	c, err := runtime.Create(ctx, id, newBundle(t, []string{"sleep", "1000"}, defaultContainer(t)), runtime.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	defer c.Delete(ctx, true)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := "/proc/" + strconv.Itoa(c.Pid()) + "/exe"
	// While the init runs the binary.
	if f, err := os.OpenFile(exe, os.O_WRONLY, 0); err == nil {
		f.Close()
		t.Fatal("opened the runtime binary for writing through the init's /proc/pid/exe")
	}
	fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The init has exec'd sleep: the binary is no longer busy.
	w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_WRONLY, 0)
	if err == nil {
		_, werr := w.Write([]byte("pwned"))
		w.Close()
		if werr == nil {
			t.Error("wrote to the runtime binary through the init's exe")
		}
	} else if !strings.Contains(err.Error(), "read-only") && err.(*os.PathError).Err != syscall.ETXTBSY {
		t.Logf("open for writing failed with %v", err)
	}
	after, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the runtime binary changed")
	}
}
