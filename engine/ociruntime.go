package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
)

// ociRuntime is what the engine needs of an OCI runtime: berth's own
// (called as a library, no extra process) or an external binary speaking
// runc's command line (crun, runc, runsc). Both run the same container
// tests.
type ociRuntime interface {
	// Create makes the container from its bundle with the given stdio (or,
	// for a terminal, sends the pty master to consoleSocket); its init
	// waits for Start. It returns the init's pid.
	Create(ctx context.Context, id, bundle string, stdio [3]*os.File, consoleSocket string) (int, error)
	Start(ctx context.Context, id string) error
	Kill(ctx context.Context, id string, sig unix.Signal, all bool) error
	// Delete removes the container's runtime state and cgroup; the
	// process is gone (or killed by force).
	Delete(ctx context.Context, id string, force bool) error
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// OOMKilled reports whether the kernel's OOM killer struck in the
	// container's cgroup; read before Delete.
	OOMKilled(ctx context.Context, id string) bool
	// Exec starts proc in the running container (see exec.go).
	Exec(ctx context.Context, id string, proc *specs.Process, o execIO) (execProcess, error)
}

// ociRuntimeFor picks the runtime a container asked for ("" or "berth" is
// berth's own).
func (e *Engine) ociRuntimeFor(name string) (ociRuntime, error) {
	switch name {
	case "", "berth":
		return builtinRuntime{root: e.runtimeRoot(), template: e.mountTemplate, cache: e.runtimeCache}, nil
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, errdefs.InvalidArgument("unknown or invalid runtime name: %s", name)
	}
	return externalRuntime{bin: bin, root: filepath.Join(e.runRoot, "runtime-"+filepath.Base(bin))}, nil
}

type builtinRuntime struct {
	root     string
	template *runtime.MountTemplate
	cache    *runtime.Cache
}

func (r builtinRuntime) Create(ctx context.Context, id, bundle string, stdio [3]*os.File, consoleSocket string) (int, error) {
	c, err := runtime.Create(ctx, id, bundle, runtime.Options{Root: r.root, Stdin: stdio[0], Stdout: stdio[1], Stderr: stdio[2], ConsoleSocket: consoleSocket, Template: r.template, Cache: r.cache})
	if err != nil {
		return 0, err
	}
	// The monitor's reaper waits for the init: the handle's pidfd and
	// sync socket would only stay open (one pidfd leaked per container).
	c.Release()
	return c.Pid(), nil
}

func (r builtinRuntime) load(ctx context.Context, id string) (*runtime.Container, error) {
	return runtime.Load(ctx, r.root, id)
}

func (r builtinRuntime) Start(ctx context.Context, id string) error {
	c, err := r.load(ctx, id)
	if err != nil {
		return err
	}
	return c.Start(ctx)
}

func (r builtinRuntime) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	c, err := r.load(ctx, id)
	if err != nil {
		return err
	}
	return c.Kill(ctx, sig, all)
}

func (r builtinRuntime) Delete(ctx context.Context, id string, force bool) error {
	c, err := r.load(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	return c.Delete(ctx, force)
}

func (r builtinRuntime) Pause(ctx context.Context, id string) error {
	c, err := r.load(ctx, id)
	if err != nil {
		return err
	}
	return c.Pause(ctx)
}

func (r builtinRuntime) Resume(ctx context.Context, id string) error {
	c, err := r.load(ctx, id)
	if err != nil {
		return err
	}
	return c.Resume(ctx)
}

func (r builtinRuntime) OOMKilled(ctx context.Context, id string) bool {
	c, err := r.load(ctx, id)
	if err != nil {
		return false
	}
	n, err := c.OOMKills(ctx)
	return err == nil && n > 0
}

// externalRuntime drives a runc-compatible binary.
type externalRuntime struct{ bin, root string }

func (r externalRuntime) run(ctx context.Context, stdio [3]*os.File, args ...string) error {
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
	var stderr strings.Builder
	if stdio[0] != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	} else {
		cmd.Stderr = &stderr
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s %s: %s", filepath.Base(r.bin), args[0], msg)
	}
	return nil
}

func (r externalRuntime) Create(ctx context.Context, id, bundle string, stdio [3]*os.File, consoleSocket string) (int, error) {
	pidFile := filepath.Join(bundle, "init.pid")
	for i := range stdio {
		if stdio[i] == nil {
			f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			stdio[i] = f
		}
	}
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	if err := r.run(ctx, stdio, append(args, id)...); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func (r externalRuntime) Start(ctx context.Context, id string) error {
	return r.run(ctx, [3]*os.File{}, "start", id)
}

func (r externalRuntime) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	return r.run(ctx, [3]*os.File{}, append(args, id, strconv.Itoa(int(sig)))...)
}

func (r externalRuntime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	err := r.run(ctx, [3]*os.File{}, append(args, id)...)
	if err != nil && (strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "not found")) {
		return nil
	}
	return err
}

func (r externalRuntime) Pause(ctx context.Context, id string) error {
	return r.run(ctx, [3]*os.File{}, "pause", id)
}

func (r externalRuntime) Resume(ctx context.Context, id string) error {
	return r.run(ctx, [3]*os.File{}, "resume", id)
}

func (r externalRuntime) OOMKilled(ctx context.Context, id string) bool { return false }
