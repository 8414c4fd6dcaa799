package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// LoadSpec reads and checks bundle/config.json.
func LoadSpec(bundle string) (*specs.Spec, error) {
	s, _, err := readSpec(bundle)
	return s, err
}

// readSpec is LoadSpec that also returns the file's bytes.
func readSpec(bundle string) (*specs.Spec, []byte, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, errdefs.NotFound("bundle %s: no config.json", bundle)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, nil, errdefs.InvalidArgument("bundle %s: malformed config.json: %v", bundle, err)
	}
	if err := Validate(&s); err != nil {
		return nil, nil, err
	}
	return &s, b, nil
}

// readSpecSeccompLater is readSpec that leaves the seccomp profile (in a
// config like Docker's, four fifths of the decoding: a few hundred call
// names) undecoded, for the caller to decode on another thread while it
// goes on. The spec it returns has no linux.seccomp; the profile's bytes,
// if there is one, are returned beside it.
func readSpecSeccompLater(bundle string) (*specs.Spec, json.RawMessage, []byte, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, errdefs.NotFound("bundle %s: no config.json", bundle)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read config: %w", err)
	}
	// The outer fields hide the embedded ones of the same name.
	var raw struct {
		specs.Spec
		Linux *struct {
			specs.Linux
			Seccomp json.RawMessage `json:"seccomp,omitempty"`
		} `json:"linux,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, nil, nil, errdefs.InvalidArgument("bundle %s: malformed config.json: %v", bundle, err)
	}
	s := raw.Spec
	var sc json.RawMessage
	if raw.Linux != nil {
		l := raw.Linux.Linux
		s.Linux = &l
		if string(raw.Linux.Seccomp) != "null" {
			sc = raw.Linux.Seccomp
		}
	}
	if err := Validate(&s); err != nil {
		return nil, nil, nil, err
	}
	return &s, sc, b, nil
}

var knownNamespaces = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

var knownRlimits = map[string]bool{
	"RLIMIT_AS": true, "RLIMIT_CORE": true, "RLIMIT_CPU": true, "RLIMIT_DATA": true,
	"RLIMIT_FSIZE": true, "RLIMIT_LOCKS": true, "RLIMIT_MEMLOCK": true, "RLIMIT_MSGQUEUE": true,
	"RLIMIT_NICE": true, "RLIMIT_NOFILE": true, "RLIMIT_NPROC": true, "RLIMIT_RSS": true,
	"RLIMIT_RTPRIO": true, "RLIMIT_RTTIME": true, "RLIMIT_SIGPENDING": true, "RLIMIT_STACK": true,
}

// Validate checks what the runtime relies on in a spec, so that bad input is
// refused before anything is created.
func Validate(s *specs.Spec) error {
	if !validVersion(s.Version) {
		return errdefs.InvalidArgument("config: unsupported ociVersion %q", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return errdefs.InvalidArgument("config: root.path is required")
	}
	if s.Process == nil {
		return errdefs.InvalidArgument("config: process is required")
	}
	if err := ValidateProcess(s.Process); err != nil {
		return err
	}
	if s.Linux != nil {
		seen := map[specs.LinuxNamespaceType]bool{}
		for _, ns := range s.Linux.Namespaces {
			if !knownNamespaces[ns.Type] {
				return errdefs.InvalidArgument("config: unknown namespace type %q", ns.Type)
			}
			if seen[ns.Type] {
				return errdefs.InvalidArgument("config: namespace %q given twice", ns.Type)
			}
			seen[ns.Type] = true
		}
		if (len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0) && !seen[specs.UserNamespace] {
			return errdefs.InvalidArgument("config: uid/gid mappings need a user namespace")
		}
		// Without its own namespace, these would change the host's.
		if (s.Hostname != "" || s.Domainname != "") && !seen[specs.UTSNamespace] {
			return errdefs.InvalidArgument("config: a hostname needs a UTS namespace")
		}
		for k := range s.Linux.Sysctl {
			if ns, ok := sysctlNamespace(k); !ok {
				return errdefs.InvalidArgument("config: sysctl %q is not namespaced", k)
			} else if !seen[ns] {
				return errdefs.InvalidArgument("config: sysctl %q needs a %s namespace", k, ns)
			}
		}
	} else if s.Hostname != "" || s.Domainname != "" {
		return errdefs.InvalidArgument("config: a hostname needs a UTS namespace")
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return errdefs.InvalidArgument("config: mount destination %q is not absolute", m.Destination)
		}
	}
	return nil
}

// ValidateProcess checks a process definition.
func ValidateProcess(p *specs.Process) error {
	if len(p.Args) == 0 {
		return errdefs.InvalidArgument("config: process.args is empty")
	}
	if p.Cwd != "" && !filepath.IsAbs(p.Cwd) {
		return errdefs.InvalidArgument("config: process.cwd %q is not absolute", p.Cwd)
	}
	for _, r := range p.Rlimits {
		if !knownRlimits[r.Type] {
			return errdefs.InvalidArgument("config: unknown rlimit %q", r.Type)
		}
		if r.Soft > r.Hard {
			return errdefs.InvalidArgument("config: rlimit %s: soft limit above hard limit", r.Type)
		}
	}
	if c := p.Capabilities; c != nil {
		for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
			for _, name := range set {
				if !knownCap(name) {
					return errdefs.InvalidArgument("config: unknown capability %q", name)
				}
			}
		}
	}
	return nil
}

func knownCap(name string) bool {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		return false
	}
	for _, c := range capNames {
		if c == n {
			return true
		}
	}
	return false
}

var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// Capabilities returns the capability names the runtime knows.
func Capabilities() []string { return append([]string(nil), capNames...) }

// validID reports whether id is usable as a container ID (and directory
// name).
func validID(id string) bool {
	if id == "" || id == "." || id == ".." || len(id) > 1024 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.', r == '+':
		default:
			return false
		}
	}
	return true
}

// sysctlNamespace returns the namespace a sysctl belongs to, if it is
// namespaced at all.
func sysctlNamespace(key string) (specs.LinuxNamespaceType, bool) {
	switch key {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
		"kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced":
		return specs.IPCNamespace, true
	case "kernel.hostname", "kernel.domainname":
		return specs.UTSNamespace, true
	}
	switch {
	case strings.HasPrefix(key, "fs.mqueue."):
		return specs.IPCNamespace, true
	case strings.HasPrefix(key, "net."):
		return specs.NetworkNamespace, true
	}
	return "", false
}

// validVersion accepts 1.x.y, with an optional -suffix (runc spec writes
// 1.0.2-dev).
func validVersion(v string) bool {
	v, _, _ = strings.Cut(v, "-")
	parts := strings.Split(v, ".")
	if len(parts) != 3 || parts[0] != "1" {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}
