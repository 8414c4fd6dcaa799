package runtime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// readSpecSeccompLater decodes all of config.json but the seccomp profile,
// whose bytes decode to what readSpec gives.
func TestReadSpecSeccompLater(t *testing.T) {
	s := DefaultSpec()
	s.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow}},
	}
	s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	dir := t.TempDir()
	write := func(s *specs.Spec) {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(s)
	full, _, err := readSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	later, raw, _, err := readSpecSeccompLater(dir)
	if err != nil {
		t.Fatal(err)
	}
	if later.Linux.Seccomp != nil {
		t.Error("the seccomp profile was decoded")
	}
	var sc specs.LinuxSeccomp
	if err := json.Unmarshal(raw, &sc); err != nil {
		t.Fatal(err)
	}
	later.Linux.Seccomp = &sc
	if !reflect.DeepEqual(full, later) {
		t.Errorf("spec differs:\n%+v\n%+v", full.Linux, later.Linux)
	}
	// No profile, or none at all: no bytes.
	s.Linux.Seccomp = nil
	write(s)
	if _, raw, _, err := readSpecSeccompLater(dir); err != nil || raw != nil {
		t.Errorf("no profile: %q, %v", raw, err)
	}
	s.Linux, s.Hostname = nil, ""
	write(s)
	if got, raw, _, err := readSpecSeccompLater(dir); err != nil || raw != nil || got.Linux != nil {
		t.Errorf("no linux: %q, %v", raw, err)
	}
}
