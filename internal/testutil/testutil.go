// Package testutil holds what berth's CLI tests and interop tests share: the
// berth binary under test, the test images, a private berth data root per
// test, a listing of a data root to prove a command left it untouched, and a
// podman set up so that it runs on berth's machines without touching the
// host's own containers.
//
// Everything here runs real programs on the real machine (tests run as root);
// nothing is mocked. Each helper that needs a directory makes it under
// t.TempDir and removes it, unmounting what was mounted there, when the test
// ends.
//
// A test package that uses BerthBin should call Main from its TestMain, so the
// binary built for the package's tests is removed afterwards:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RepoRoot returns the root directory of the berth checkout the test runs
// in: the nearest parent of the working directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("finding the repository root: no go.mod above %s", dir)
		}
	}
}

// ImagePaths are the paths of the rootfs tarballs that hack/mkimages.sh
// writes. Import them to get images: nothing can be pulled on berth's machines.
type ImagePaths struct {
	// Busybox is a rootfs with /bin/busybox, its applet links, /etc/passwd,
	// /etc/group and /tmp. Its command is /bin/sh, set at import.
	Busybox string
	// Hello is a scratch rootfs holding only /hello, a static program that
	// prints "Hello from berth!" and its arguments, and serves HTTP with
	// -listen ADDR.
	Hello string
}

// HelloGreeting is the first line /hello prints in the Hello test image.
const HelloGreeting = "Hello from berth!"

// images caches the result of running hack/mkimages.sh, which is needed only
// once per test binary (the script itself is safe across processes).
var images struct {
	once sync.Once
	imgs ImagePaths
	err  error
}

// Images makes the test images (running hack/mkimages.sh once per test
// binary; the script returns at once when they are up to date) and returns
// their paths.
func Images(t testing.TB) ImagePaths {
	t.Helper()
	images.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			images.err = err
			return
		}
		out := filepath.Join(root, "_out", "images")
		cmd := exec.Command(filepath.Join(root, "hack", "mkimages.sh"), out)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			images.err = fmt.Errorf("hack/mkimages.sh: %w\n%s", err, b)
			return
		}
		images.imgs = ImagePaths{
			Busybox: filepath.Join(out, "busybox-rootfs.tar"),
			Hello:   filepath.Join(out, "hello-rootfs.tar"),
		}
	})
	if images.err != nil {
		t.Fatal(images.err)
	}
	return images.imgs
}

// Result is what a finished command left: its output and its exit code.
type Result struct {
	Stdout string
	Stderr string
	// Code is the exit code, or -1 if the process was killed by a signal.
	Code int
}

// String describes the result for test failure messages.
func (r Result) String() string {
	return fmt.Sprintf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// commandTimeout bounds every command run through this package, so that a
// hung command fails its test with its output rather than stalling the run.
const commandTimeout = 10 * time.Minute

// run runs name with args, feeding it stdin (nil for none), and returns its
// result. It fails the test only if the program could not be started.
func run(t testing.TB, env []string, stdin io.Reader, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.Code = exitErr.ExitCode()
	default:
		t.Fatalf("running %s %s: %v", name, strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %v\n%s", name, strings.Join(args, " "), commandTimeout, res)
	}
	return res
}
