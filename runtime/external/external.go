// Package external drives an OCI runtime binary — runc, crun, gVisor's
// runsc, or berth-runtime itself — through its runc-compatible command
// line, for the engine's --runtime choice. It mirrors the lifecycle of
// package runtime: Create, Start, State, Kill, Delete.
package external

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime is an OCI runtime binary.
type Runtime struct {
	// Path is the binary (a name is looked up in PATH).
	Path string
	// Root is its state directory (--root); empty for its default.
	Root string
	// SystemdCgroup passes --systemd-cgroup.
	SystemdCgroup bool
}

// CreateOptions are the choices for Create.
type CreateOptions struct {
	PidFile       string
	ConsoleSocket string
	NoPivot       bool
	// Stdin, Stdout and Stderr become the container process's stdio; nil
	// is /dev/null.
	Stdin, Stdout, Stderr *os.File
}

func (r *Runtime) command(ctx context.Context, args ...string) *exec.Cmd {
	var global []string
	if r.Root != "" {
		global = append(global, "--root", r.Root)
	}
	if r.SystemdCgroup {
		global = append(global, "--systemd-cgroup")
	}
	return exec.CommandContext(ctx, r.Path, append(global, args...)...)
}

// run runs a command and turns a failure into an error carrying the
// runtime's own words.
func (r *Runtime) run(cmd *exec.Cmd) ([]byte, error) {
	var stderr bytes.Buffer
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	var out []byte
	var err error
	if cmd.Stdout == nil {
		out, err = cmd.Output()
	} else {
		err = cmd.Run()
	}
	if err == nil {
		return out, nil
	}
	msg := strings.TrimSpace(stderr.String())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		msg = err.Error()
	}
	what := strings.Join(cmd.Args[1:], " ")
	if strings.Contains(msg, "does not exist") || strings.Contains(msg, "not exist") || strings.Contains(msg, "No such") {
		return nil, errdefs.NotFound("%s %s: %s", r.Path, what, msg)
	}
	return nil, fmt.Errorf("%s %s: %s", r.Path, what, msg)
}

// Create creates container id from the bundle.
func (r *Runtime) Create(ctx context.Context, id, bundle string, opts CreateOptions) error {
	args := []string{"create", "--bundle", bundle}
	if opts.PidFile != "" {
		args = append(args, "--pid-file", opts.PidFile)
	}
	if opts.ConsoleSocket != "" {
		args = append(args, "--console-socket", opts.ConsoleSocket)
	}
	if opts.NoPivot {
		args = append(args, "--no-pivot")
	}
	cmd := r.command(ctx, append(args, id)...)
	// The container's init inherits the runtime's stdio: a pipe here would
	// stay open as long as the container. Files only.
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	or := func(f *os.File) *os.File {
		if f != nil {
			return f
		}
		return null
	}
	cmd.Stdin, cmd.Stdout = or(opts.Stdin), or(opts.Stdout)
	var errFile *os.File
	if opts.Stderr != nil {
		cmd.Stderr = opts.Stderr
	} else {
		if errFile, err = os.CreateTemp("", "oci-runtime-err-"); err != nil {
			return err
		}
		defer os.Remove(errFile.Name())
		defer errFile.Close()
		cmd.Stderr = errFile
	}
	if err := cmd.Run(); err != nil {
		msg := err.Error()
		if errFile != nil {
			if b, _ := os.ReadFile(errFile.Name()); len(bytes.TrimSpace(b)) > 0 {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				msg = lines[len(lines)-1]
			}
		}
		if strings.Contains(msg, "exist") {
			return errdefs.AlreadyExists("%s create %s: %s", r.Path, id, msg)
		}
		return fmt.Errorf("%s create %s: %s", r.Path, id, msg)
	}
	return nil
}

// Start starts a created container.
func (r *Runtime) Start(ctx context.Context, id string) error {
	_, err := r.run(r.command(ctx, "start", id))
	return err
}

// State returns the container's state.
func (r *Runtime) State(ctx context.Context, id string) (*specs.State, error) {
	out, err := r.run(r.command(ctx, "state", id))
	if err != nil {
		return nil, err
	}
	var s specs.State
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("%s state %s: %w", r.Path, id, err)
	}
	return &s, nil
}

// Kill sends sig to the container's init (or, with all, every process).
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(r.command(ctx, append(args, id, strconv.Itoa(int(sig)))...))
	return err
}

// Delete deletes the container; force kills it first if it runs.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(r.command(ctx, append(args, id)...))
	return err
}
