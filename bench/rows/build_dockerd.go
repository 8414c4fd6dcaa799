package rows

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/bench/harness"
)

// The BuildKit side of the build rows needs a dockerd. The bench starts
// one of its own, once, as PEERS.md says one starts here without systemd:
// Debian's docker.io (installed from apt if missing), its own data root,
// exec root, socket and bridge, and --iptables=false so that it leaves the
// machine's firewall (which berth's network tests use) alone; the build
// steps need no NAT. Debian's 20.10 client (/usr/bin/docker) drives it
// with DOCKER_BUILDKIT=1: the newer /usr/local/bin/docker wants buildx,
// which is not installed. The busybox base is loaded into it with docker
// load from a berth save. dockerd dies with the bench (Pdeathsig).

const (
	dockerdDir    = "/tmp/berth-bench-dockerd"
	dockerdBridge = "berthbk0"
	dockerdNet    = "172.31.251.1/24"
	dockerClient  = "/usr/bin/docker"
)

type dockerd struct {
	env []string
}

var dockerdOnce struct {
	sync.Once
	d   *dockerd
	err error
}

// startDockerd starts the bench's dockerd (once) with busybox loaded.
func startDockerd(env Env, bb busybox) (*dockerd, error) {
	dockerdOnce.Do(func() { dockerdOnce.d, dockerdOnce.err = launchDockerd(env, bb) })
	return dockerdOnce.d, dockerdOnce.err
}

func launchDockerd(env Env, bb busybox) (*dockerd, error) {
	if _, err := os.Stat("/usr/sbin/dockerd"); err != nil {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "docker.io")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get install docker.io: %w\n%s", err, out)
		}
	}
	// A dockerd an earlier bench left (killed before its Pdeathsig):
	// ours by its pid file.
	pidfile := filepath.Join(dockerdDir, "docker.pid")
	if b, err := os.ReadFile(pidfile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "dockerd" {
				syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
	}
	if err := os.MkdirAll(dockerdDir, 0o700); err != nil {
		return nil, err
	}
	if err := exec.Command("ip", "link", "show", dockerdBridge).Run(); err != nil {
		for _, args := range [][]string{
			{"link", "add", dockerdBridge, "type", "bridge"},
			{"addr", "add", dockerdNet, "dev", dockerdBridge},
			{"link", "set", dockerdBridge, "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("ip %s: %w\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	sock := filepath.Join(dockerdDir, "docker.sock")
	log, err := os.Create(filepath.Join(dockerdDir, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/usr/sbin/dockerd",
		"--data-root", filepath.Join(dockerdDir, "data"), "--exec-root", filepath.Join(dockerdDir, "exec"),
		"--host", "unix://"+sock, "--pidfile", pidfile, "--bridge", dockerdBridge,
		"--iptables=false", "--ip-masq=false")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	d := &dockerd{env: append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_BUILDKIT=1")}
	var lastErr error
	for i := 0; i < 300; i++ {
		if lastErr = d.exec("version")(context.Background()); lastErr == nil {
			break
		}
		select {
		case <-exited:
			i = 300
		case <-time.After(100 * time.Millisecond):
		}
	}
	if lastErr != nil {
		b, _ := os.ReadFile(log.Name())
		return nil, fmt.Errorf("dockerd did not start: %w\n%s", lastErr, tail(string(b), 20))
	}
	// The base image: berth's import of the busybox rootfs, saved by
	// berth and loaded by docker.
	if env.BerthSkip != "" {
		return nil, errors.New("busybox for dockerd comes from berth save, and berth is not built")
	}
	tmp, err := os.MkdirTemp("", "berth-bench-bb-")
	if err != nil {
		return nil, err
	}
	defer func() {
		exec.Command("umount", "-R", filepath.Join(tmp, "run")).Run()
		os.RemoveAll(tmp)
	}()
	b := berthStore{bin: env.Berth, root: filepath.Join(tmp, "root"), runroot: filepath.Join(tmp, "run")}
	archive := filepath.Join(tmp, "busybox.tar")
	for _, t := range []harness.Timed{
		b.exec("import", "-c", `CMD ["sh"]`, bb.tar, "busybox"),
		b.exec("save", "-o", archive, "busybox"),
		d.exec("load", "-i", archive),
	} {
		if err := t(context.Background()); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *dockerd) exec(args ...string) harness.Timed {
	return harness.Exec(d.env, dockerClient, args...)
}

// reset removes the app's image and every build cache record.
func (d *dockerd) reset(ctx context.Context) error {
	d.exec("rmi", "-f", "myapp:v1")(ctx)
	if err := d.exec("builder", "prune", "-af")(ctx); err != nil {
		return err
	}
	return d.exec("image", "prune", "-f")(ctx)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
