package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Podman runs Debian's podman against storage of its own (--root, --runroot,
// --tmpdir in one directory) with a containers.conf that works on berth's
// machines: open-file and process limits within the host's hard limits
// (CAP_SYS_RESOURCE is not in the bounding set there, so podman's default
// nofile=1048576 fails), the cgroupfs cgroup manager (there is no systemd),
// and events written to a file.
//
// Containers run through it should use --network none: tests send traffic
// only to loopback and must not touch the host's networks.
type Podman struct {
	t testing.TB // set by NewPodman; Run and MustRun need it
	// Bin is the podman binary.
	Bin string
	// Dir holds Root, RunRoot, TmpDir and ConfFile.
	Dir string
	// Root is the storage root, passed as --root.
	Root string
	// RunRoot is the storage run root, passed as --runroot.
	RunRoot string
	// TmpDir is libpod's temporary state, passed as --tmpdir.
	TmpDir string
	// ConfFile is the containers.conf that CONTAINERS_CONF points to.
	ConfFile string
	// Runtime is the OCI runtime: "runc" or "crun".
	Runtime string
	// Env is the environment every command gets.
	Env []string
}

// PodmanAvailable reports why podman cannot be used here, or nil if it can.
func PodmanAvailable() error {
	if _, err := exec.LookPath("podman"); err != nil {
		return errors.New("podman is not installed (apt-get install podman)")
	}
	return nil
}

// NewPodman returns a Podman with fresh storage under t.TempDir, using the
// OCI runtime named by runtime ("runc", or "crun" after EnsureHugetlbV1). It
// skips the test if podman is not installed. When the test ends, whatever
// podman left mounted in its storage is unmounted and the storage removed.
func NewPodman(t testing.TB, runtime string) *Podman {
	t.Helper()
	if err := PodmanAvailable(); err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp(shortTempDir(), "podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := UnmountAll(dir); err != nil {
			t.Errorf("cleaning up podman's storage: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleaning up podman's storage: %v", err)
		}
	})
	p, err := SetupPodman(dir, runtime)
	if err != nil {
		t.Fatal(err)
	}
	p.t = t
	return p
}

// shortTempDir returns a directory for podman's storage: podman refuses a run
// root longer than 50 characters, which rules out t.TempDir (named after the
// test) and may rule out a long $TMPDIR.
func shortTempDir() string {
	if d := os.TempDir(); len(d) <= 16 {
		return d
	}
	return "/tmp"
}

// SetupPodman prepares podman storage and configuration in dir, which must
// exist and have a short path (podman refuses a run root longer than 50
// characters), for programs that are not tests (the benchmarks). The caller
// removes dir when done, after UnmountAll(dir).
func SetupPodman(dir, runtime string) (*Podman, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, fmt.Errorf("podman is not installed: %w", err)
	}
	switch runtime {
	case "", "runc":
		runtime = "runc"
	case "crun":
		if err := EnsureHugetlbV1(); err != nil {
			return nil, fmt.Errorf("preparing for crun: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown OCI runtime %q for podman: want runc or crun", runtime)
	}
	p := &Podman{
		Bin:      bin,
		Dir:      dir,
		Root:     filepath.Join(dir, "root"),
		RunRoot:  filepath.Join(dir, "run"),
		TmpDir:   filepath.Join(dir, "tmp"),
		ConfFile: filepath.Join(dir, "containers.conf"),
		Runtime:  runtime,
	}
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = %q
`, runtime)
	if err := os.WriteFile(p.ConfFile, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("writing podman configuration: %w", err)
	}
	p.Env = append(environWithout("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"),
		"CONTAINERS_CONF="+p.ConfFile)
	return p, nil
}

// Args returns the full argument list for a podman command: the global flags
// that select this Podman's storage and runtime, then args.
func (p *Podman) Args(args ...string) []string {
	return append([]string{
		"--root", p.Root,
		"--runroot", p.RunRoot,
		"--tmpdir", p.TmpDir,
		"--storage-driver", "overlay",
		"--runtime", p.Runtime,
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
	}, args...)
}

// Command returns an unstarted podman command with args, set up to use this
// Podman's storage and configuration.
func (p *Podman) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.Bin, p.Args(args...)...)
	cmd.Env = p.Env
	return cmd
}

// Run runs podman with args and returns its result, whatever its exit code.
// The Podman must come from NewPodman.
func (p *Podman) Run(args ...string) Result {
	p.t.Helper()
	return run(p.t, p.Env, nil, p.Bin, p.Args(args...)...)
}

// MustRun runs podman with args and fails the test unless it exits 0.
// The Podman must come from NewPodman.
func (p *Podman) MustRun(args ...string) Result {
	p.t.Helper()
	res := p.Run(args...)
	if res.Code != 0 {
		p.t.Fatalf("podman %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// hugetlbDir is where EnsureHugetlbV1 mounts the hugetlb hierarchy, as
// ../shared/PEERS.md describes.
const hugetlbDir = "/sys/fs/cgroup/hugetlb"

// EnsureHugetlbV1 gives the hugetlb controller a cgroup v1 hierarchy of its
// own at /sys/fs/cgroup/hugetlb unless it has one already. crun refuses a
// hybrid cgroup host while any controller sits on the cgroup2 mount, and on
// berth's machines hugetlb is the one that does. It is idempotent and safe
// to call from several processes at once.
func EnsureHugetlbV1() error {
	if ok, err := hugetlbV1Mounted(); err != nil || ok {
		return err
	}
	// Serialise with other processes doing the same, then look again.
	lock, err := os.OpenFile("/run/berth-testutil-hugetlb.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("mounting the hugetlb cgroup: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("mounting the hugetlb cgroup: locking: %w", err)
	}
	if ok, err := hugetlbV1Mounted(); err != nil || ok {
		return err
	}
	if err := os.MkdirAll(hugetlbDir, 0o755); err != nil {
		return fmt.Errorf("mounting the hugetlb cgroup: %w", err)
	}
	if err := syscall.Mount("cgroup", hugetlbDir, "cgroup", 0, "hugetlb"); err != nil {
		return fmt.Errorf("mounting the hugetlb cgroup on %s: %w", hugetlbDir, err)
	}
	return nil
}

// hugetlbV1Mounted reports whether a cgroup v1 hierarchy with the hugetlb
// controller is mounted.
func hugetlbV1Mounted() (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("reading mountinfo: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		// The optional fields end at " - ", followed by the filesystem
		// type, the source and the super block options.
		_, after, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(after)
		if len(f) < 3 || f[0] != "cgroup" {
			continue
		}
		for opt := range strings.SplitSeq(f[2], ",") {
			if opt == "hugetlb" {
				return true, nil
			}
		}
	}
	return false, nil
}
