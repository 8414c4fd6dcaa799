// Package runtime holds end-to-end tests of berth's OCI runtime driven by
// other engines through its runc-compatible command line.
package runtime

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// buildRuntime builds cmd/berth-runtime into dir.
func buildRuntime(t *testing.T, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, "berth-runtime")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/berth-runtime")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth-runtime: %v\n%s", err, out)
	}
	return bin
}

// busyboxTar returns a tar of a root filesystem made of /bin/busybox and its
// applet links.
func busyboxTar(t *testing.T) []byte {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox is not installed")
	}
	body, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))})
	tw.Write(body)
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPodmanRunsBerthRuntime: Debian's podman runs a busybox container with
// berth-runtime as its OCI runtime.
func TestPodmanRunsBerthRuntime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed")
	}
	// podman wants a short run root.
	dir, err := os.MkdirTemp("/tmp", "bp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := buildRuntime(t, dir)
	tarPath := filepath.Join(dir, "busybox.tar")
	if err := os.WriteFile(tarPath, busyboxTar(t), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "containers.conf")
	// This machine's hard limit for open files is below podman's default,
	// and CAP_SYS_RESOURCE is not in the bounding set.
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "rr"),
		"--cgroup-manager", "cgroupfs", "--events-backend", "file",
		"--runtime", bin,
	}
	podmanCmd := func(args ...string) (string, error) {
		cmd := exec.Command(podman, append(append([]string(nil), base...), args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	defer podmanCmd("system", "reset", "--force")
	if out, err := podmanCmd("import", tarPath, "localhost/berth-busybox:test"); err != nil {
		t.Fatalf("podman import: %v\n%s", err, out)
	}
	out, err := podmanCmd("run", "--rm", "--network", "none", "--log-driver", "k8s-file", "localhost/berth-busybox:test", "echo", "hi")
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	if strings.TrimSpace(out) != "hi" {
		t.Errorf("podman run printed %q, want hi", out)
	}
	out, err = podmanCmd("run", "--rm", "--network", "none", "--log-driver", "k8s-file", "localhost/berth-busybox:test", "sh", "-c", "exit 7")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("exit status: %v, want 7\n%s", err, out)
	}
}
