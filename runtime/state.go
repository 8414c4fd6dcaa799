package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	rcgroups "github.com/berth-dev/berth/runtime/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Status is a container's lifecycle state, as the OCI runtime spec names
// them (plus paused, as runc reports it).
type Status string

// The statuses.
const (
	Creating Status = "creating"
	Created  Status = "created"
	Running  Status = "running"
	Paused   Status = "paused"
	Stopped  Status = "stopped"
)

// saved is what a container's state.json holds.
type saved struct {
	ID      string          `json:"id"`
	Bundle  string          `json:"bundle"`
	Rootfs  string          `json:"rootfs"`
	Pid     int             `json:"pid"`
	Start   uint64          `json:"pidStartTime"` // /proc/<pid>/stat field 22
	Created time.Time       `json:"created"`
	Cgroup  rcgroups.Config `json:"cgroup"`
	Owner   string          `json:"owner,omitempty"`
	// What later commands need of the spec; the whole of it, as created,
	// is in spec.json, for exec.
	Annotations map[string]string `json:"annotations,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"` // poststart and poststop
}

// State is the state of a container as `state` prints it: the OCI state
// plus runc's extra fields.
type State struct {
	specs.State
	Status  Status    `json:"status"`
	Rootfs  string    `json:"rootfs"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

const (
	stateFile = "state.json"
	specFile  = "spec.json"
	fifoFile  = "exec.fifo"
)

// writeFileAtomic writes a file whole or not at all.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (s *saved) write(dir string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, stateFile), b, 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
