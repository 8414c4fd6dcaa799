package cgroups

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	devices "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestResolvePath(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "/berth/c1",
		"/a/b":                      "/a/b",
		"rel/x":                     "/rel/x",
		"machine.slice:libpod:abc":  "/machine.slice/libpod-abc.scope",
		"system-foo.slice:berth:c1": "/system.slice/system-foo.slice/berth-c1.scope",
		":berth:c1":                 "/system.slice/berth-c1.scope",
	} {
		if got := ResolvePath(in, "c1"); got != want {
			t.Errorf("ResolvePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResources(t *testing.T) {
	mem, shares, pids := int64(1<<20), uint64(100), int64(5)
	major := int64(10)
	r, err := Resources(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: &mem},
		CPU:     &specs.LinuxCPU{Shares: &shares, Cpus: "0-1"},
		Pids:    &specs.LinuxPids{Limit: &pids},
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Access: "rw"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Memory != mem || r.CpuShares != shares || *r.PidsLimit != pids || r.CpusetCpus != "0-1" {
		t.Errorf("resources %+v", r)
	}
	if got := r.Devices[0].CgroupString(); got != "a *:* rwm" || r.Devices[0].Allow {
		t.Errorf("first rule %q", got)
	}
	if got := r.Devices[1].CgroupString(); got != "c 10:* rw" {
		t.Errorf("second rule %q", got)
	}
	// The default devices stay allowed, after the spec's rules.
	if n := len(r.Devices); n != 2+9 || r.Devices[2].CgroupString() != "c 1:3 rwm" {
		t.Errorf("rules %d, third %q", n, r.Devices[2].CgroupString())
	}
	if _, err := Resources(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x"}}}); err == nil {
		t.Error("unknown device type accepted")
	}
}

func TestWriteDeviceRules(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"devices.allow", "devices.deny"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rule := func(allow bool, typ devices.Type, major, minor int64, perm string) *devices.Rule {
		return &devices.Rule{Allow: allow, Type: typ, Major: major, Minor: minor, Permissions: devices.Permissions(perm)}
	}
	rules := []*devices.Rule{
		rule(false, devices.WildcardDevice, -1, -1, "rwm"),
		rule(true, devices.CharDevice, 1, 3, "rwm"),
		rule(true, devices.CharDevice, 1, 5, "rwm"),
		rule(false, devices.CharDevice, 1, 5, "w"),
		rule(true, devices.CharDevice, 1, 3, "rwm"), // still allowed: left out
		rule(true, devices.CharDevice, 1, 5, "rwm"), // denied since: written
		rule(true, devices.CharDevice, 1, 3, "rw"),  // not the same rule: written
		rule(false, devices.WildcardDevice, -1, -1, "rwm"),
		rule(true, devices.CharDevice, 1, 3, "rw"), // all denied since: written
	}
	if err := writeDeviceRules(dir, rules); err != nil {
		t.Fatal(err)
	}
	// Each file is written in one go from its start: the rules end to end.
	for f, want := range map[string]string{
		"devices.allow": "c 1:3 rwm" + "c 1:5 rwm" + "c 1:5 rwm" + "c 1:3 rw" + "c 1:3 rw",
		"devices.deny":  "a *:* rwm" + "c 1:5 w" + "a *:* rwm",
	} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("%s: %q, want %q", f, b, want)
		}
	}
}

// TestHierarchies: a group placed with the hierarchies found once has the
// directories of one placed by looking for them, for each of several
// groups, and one made that way is where the kernel put it.
func TestHierarchies(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a cgroup")
	}
	h := &Hierarchies{}
	for _, p := range []string{"/berth-test/a", "/berth-test/b/c", "/machine.slice/libpod-x.scope"} {
		want, err := New(p, &specs.LinuxResources{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := New(p, &specs.LinuxResources{}, h)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.cfg.Paths) == 0 || !maps.Equal(got.cfg.Paths, want.cfg.Paths) {
			t.Errorf("group %s: paths %v with the hierarchies found once, %v looked for", p, got.cfg.Paths, want.cfg.Paths)
		}
	}
	g, err := New("/berth-test/made", &specs.LinuxResources{}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Make(); err != nil {
		t.Fatal(err)
	}
	made := maps.Clone(g.cfg.Paths) // Destroy empties the group's
	defer func() {
		g.Destroy()
		for _, p := range made {
			os.Remove(filepath.Dir(p)) // berth-test, in each hierarchy
		}
	}()
	for sub, p := range g.cfg.Paths {
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err != nil {
			t.Errorf("hierarchy %s: %v", sub, err)
		}
	}
}
