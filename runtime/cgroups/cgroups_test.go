package cgroups

import (
	"testing"

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
