package forkinit

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/berth-dev/berth/runtime/internal/initproc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func config(edit func(*initproc.Config)) *initproc.Config {
	c := &initproc.Config{
		Mode: initproc.ModeCreate,
		Spec: &specs.Spec{
			Root:   &specs.Root{Path: "/rootfs"},
			Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
			Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
			}},
		},
		Process:    &specs.Process{Args: []string{"sh"}, Env: []string{"PATH=/bin:/usr/bin"}},
		Rootfs:     "/rootfs",
		OwnMountNS: true,
		FifoFD:     -1, ConsoleFD: -1, MountNSFD: -1,
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func TestSupported(t *testing.T) {
	if !Supported(config(nil)) {
		t.Error("a plain container is not supported")
	}
	for name, edit := range map[string]func(*initproc.Config){
		"user namespace": func(c *initproc.Config) {
			c.Spec.Linux.Namespaces = append(c.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		},
		"joined pid namespace": func(c *initproc.Config) { c.Spec.Linux.Namespaces[0].Path = "/proc/1/ns/pid" },
		"terminal":             func(c *initproc.Config) { c.Process.Terminal = true },
		"container hooks": func(c *initproc.Config) {
			c.Spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/true"}}}
		},
		"exec": func(c *initproc.Config) { c.Mode = initproc.ModeExec },
	} {
		if Supported(config(edit)) {
			t.Errorf("%s: supported", name)
		}
	}
}

func TestBuild(t *testing.T) {
	p, err := Build(config(func(c *initproc.Config) { c.Spec.Hostname = "box" }), 4, 3, []string{"/sys/fs/cgroup/pids/x/tasks"})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(p.descs, "\n")
	for _, want := range []string{"move descriptor 3", "set hostname", "bind rootfs", "create /proc in the root",
		"wait for the cgroup", "join cgroup /sys/fs/cgroup/pids/x", "pivot_root", `exec: "sh"`, "wait for start", `exec "sh"`} {
		if !strings.Contains(all, want) {
			t.Errorf("no step %q in\n%s", want, all)
		}
	}
	if len(p.ops) != len(p.descs) {
		t.Fatal("ops and descriptions differ in length")
	}
	if got := len(p.s.cands); got != 2 {
		t.Errorf("%d executable candidates, want 2 (PATH=/bin:/usr/bin)", got)
	}
	// A failure report names the step.
	var msg bytes.Buffer
	i := strings.Index(all, "pivot_root")
	idx := strings.Count(all[:i], "\n")
	binary.Write(&msg, binary.NativeEndian, [4]uint32{uint32(idx), uint32(unix.EINVAL), 1, 0})
	m, err := p.ReadMessage(&msg)
	if err != nil || m.Err == nil || !strings.Contains(m.Err.Error(), "pivot_root: invalid argument") {
		t.Errorf("message %+v %v", m, err)
	}
	if _, err := Build(config(func(c *initproc.Config) { c.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}} }), 3, 2, nil); err == nil {
		t.Error("unknown rlimit accepted")
	}
}

// On cgroup v1 the cgroup mounts wait for the cgroup: they come after the
// other mounts and the device nodes when nothing mounted later lands in or
// above them, and a new cgroup namespace is made once the child has joined.
func TestBuildCgroupLast(t *testing.T) {
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup"},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm"},
	}
	build := func(mounts []specs.Mount) string {
		t.Helper()
		p, err := Build(config(func(c *initproc.Config) {
			c.Spec.Mounts = mounts
			c.Spec.Linux.Namespaces = append(c.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
			c.Cgroup = initproc.CgroupMount{Paths: map[string]string{"pids": "/sys/fs/cgroup/pids/x"}}
		}), 4, 3, []string{"/sys/fs/cgroup/pids/x/tasks"})
		if err != nil {
			t.Fatal(err)
		}
		if !p.cgroupNS {
			t.Error("the cgroup namespace is made at clone")
		}
		return strings.Join(p.descs, "\n")
	}
	order := func(all string, steps ...string) {
		t.Helper()
		at := 0
		for _, s := range steps {
			i := strings.Index(all[at:], s)
			if i < 0 {
				t.Fatalf("no step %q after offset %d in\n%s", s, at, all)
			}
			at += i + len(s)
		}
	}
	order(build(mounts), "mount shm on /dev/shm", "create device /dev/null", "wait for the cgroup",
		"join cgroup /sys/fs/cgroup/pids/x", "make the cgroup namespace", "mount cgroup on /sys/fs/cgroup", "pivot_root")
	// A later mount inside the cgroup mount keeps the spec's order.
	nested := append(mounts, specs.Mount{Destination: "/sys/fs/cgroup/x", Type: "tmpfs", Source: "tmpfs"})
	order(build(nested), "mount proc on /proc", "wait for the cgroup", "join cgroup", "mount cgroup on /sys/fs/cgroup",
		"mount shm on /dev/shm", "create device /dev/null")
}
