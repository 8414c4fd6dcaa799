package testutil

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BerthBinEnv names the environment variable that points tests at a berth
// binary already built (by make build, say) instead of building one.
const BerthBinEnv = "BERTH_BIN"

// berthBin caches the binary built for this test process.
var berthBin struct {
	once sync.Once
	dir  string // temporary directory holding the binary; removed by Main
	path string
	err  error
}

// BerthBin returns the path of the berth binary under test: $BERTH_BIN if it
// is set, or else a binary built from ./cmd/berth, once per test binary, into
// a temporary directory, with berth-imagetools beside it (berth runs its
// image tools through it). It skips the test if the checkout has no
// cmd/berth.
func BerthBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BerthBinEnv); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatalf("$%s: %v", BerthBinEnv, err)
		}
		return abs
	}
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "cmd", "berth")); os.IsNotExist(err) {
		t.Skip("no cmd/berth in this checkout yet")
	}
	berthBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-testbin-")
		if err != nil {
			berthBin.err = fmt.Errorf("building berth: %w", err)
			return
		}
		berthBin.dir = dir
		bin := filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/berth", "./cmd/berth-imagetools")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as make builds it
		if out, err := cmd.CombinedOutput(); err != nil {
			berthBin.err = fmt.Errorf("go build ./cmd/berth ./cmd/berth-imagetools: %w\n%s", err, out)
			return
		}
		berthBin.path = bin
	})
	if berthBin.err != nil {
		t.Fatal(berthBin.err)
	}
	return berthBin.path
}

// Main runs the tests of a package and then removes what this package kept
// for the whole test binary (the berth binary BerthBin built). Call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if berthBin.dir != "" {
		os.RemoveAll(berthBin.dir)
	}
	os.Exit(code)
}

// Berth runs the berth binary under test against a data root and a run root
// of its own, so tests neither see nor disturb each other or the host's
// /var/lib/berth.
type Berth struct {
	t testing.TB
	// Bin is the berth binary.
	Bin string
	// Root is the data root, passed as --root.
	Root string
	// RunRoot is the run root, passed as --runroot.
	RunRoot string
	// Env is the environment every command gets (the test's own, without
	// BERTH_ROOT).
	Env []string
}

// NewBerth returns a Berth with a fresh, empty data root and run root, both
// removed (after unmounting anything berth left mounted in them) when the
// test ends.
func NewBerth(t testing.TB) *Berth {
	t.Helper()
	bin := BerthBin(t)
	dir := t.TempDir()
	b := &Berth{
		t:       t,
		Bin:     bin,
		Root:    filepath.Join(dir, "root"),
		RunRoot: filepath.Join(dir, "run"),
		Env:     environWithout("BERTH_ROOT"),
	}
	// Cleanups run last-registered first, so this unmounts before
	// t.TempDir's cleanup removes the directory. `system reset` first
	// takes what the roots made on the host (the default network's bridge
	// and firewall rules stay otherwise, as docker0 does).
	t.Cleanup(func() {
		if _, err := os.Stat(b.Root); err == nil {
			reset := exec.Command(b.Bin, b.Args("system", "reset", "--force")...)
			reset.Env = b.Env
			if out, err := reset.CombinedOutput(); err != nil {
				t.Logf("berth system reset: %v\n%s", err, out)
			}
		}
		if err := UnmountAll(dir); err != nil {
			t.Errorf("cleaning up berth's roots: %v", err)
		}
	})
	return b
}

// Args returns the full argument list for a berth command: the global
// --root and --runroot flags, then args.
func (b *Berth) Args(args ...string) []string {
	return append([]string{"--root", b.Root, "--runroot", b.RunRoot}, args...)
}

// Run runs berth with args and returns its result, whatever its exit code.
func (b *Berth) Run(args ...string) Result {
	b.t.Helper()
	return run(b.t, b.Env, nil, b.Bin, b.Args(args...)...)
}

// RunInput is Run with stdin read from r.
func (b *Berth) RunInput(r io.Reader, args ...string) Result {
	b.t.Helper()
	return run(b.t, b.Env, r, b.Bin, b.Args(args...)...)
}

// MustRun runs berth with args and fails the test unless it exits 0.
func (b *Berth) MustRun(args ...string) Result {
	b.t.Helper()
	res := b.Run(args...)
	if res.Code != 0 {
		b.t.Fatalf("berth %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// environWithout returns the process environment less the named variables.
func environWithout(names ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}
