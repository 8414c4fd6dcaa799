package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/runtime"
)

// TopResult is `top`'s table: ps's header and the rows of the container's
// processes.
type TopResult struct {
	Titles    []string
	Processes [][]string
}

// Top runs ps on the host (with psArgs, "-ef" when empty) and keeps the
// rows of the processes in the container's cgroup, as docker top does.
func (e *Engine) Top(ctx context.Context, ref string, psArgs []string) (*TopResult, error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !c.State.Running {
		return nil, errdefs.Conflict("container %s is not running", c.ID)
	}
	pids, err := e.containerPids(ctx, c)
	if err != nil {
		return nil, err
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.CommandContext(ctx, "ps", psArgs...).Output()
	if err != nil {
		return nil, fmt.Errorf("error running ps: %w", err)
	}
	return parsePS(out, pids)
}

// parsePS keeps the lines of ps's output whose PID column is in pids. The
// last column (the command) may hold spaces: it is the rest of the line.
func parsePS(out []byte, pids []int) (*TopResult, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 {
		return nil, fmt.Errorf("ps printed nothing")
	}
	titles := strings.Fields(lines[0])
	col := slices.Index(titles, "PID")
	if col < 0 {
		return nil, errdefs.InvalidArgument("Couldn't find PID field in ps output")
	}
	res := &TopResult{Titles: titles}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		pid, err := strconv.Atoi(f[col])
		if err != nil {
			return nil, fmt.Errorf("unexpected pid %q: %w", f[col], err)
		}
		if !slices.Contains(pids, pid) {
			continue
		}
		if len(f) > len(titles) {
			last := strings.Join(f[len(titles)-1:], " ")
			f = append(f[:len(titles)-1], last)
		}
		res.Processes = append(res.Processes, f)
	}
	return res, nil
}

// containerPids lists the processes in the container's cgroup, as its
// runtime knows them.
func (e *Engine) containerPids(ctx context.Context, c *container.Container) ([]int, error) {
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return nil, err
	}
	switch r := rt.(type) {
	case builtinRuntime:
		rc, err := runtime.Load(ctx, r.root, c.ID)
		if err != nil {
			return nil, err
		}
		return rc.Processes(ctx)
	case externalRuntime:
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, r.bin, "--root", r.root, "ps", "--format", "json", c.ID)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s ps: %s", r.bin, strings.TrimSpace(stderr.String()))
		}
		var pids []int
		if err := json.Unmarshal(out, &pids); err != nil {
			return nil, fmt.Errorf("%s ps: %w", r.bin, err)
		}
		return pids, nil
	}
	return nil, errdefs.NotImplemented("listing processes with runtime %s", c.HostConfig.Runtime)
}
