package initproc

import specs "github.com/opencontainers/runtime-spec/specs-go"

// EnvInit names the environment variable that turns a process of the
// runtime's binary into a container init; its value is the number of the
// file descriptor of the sync socket.
const EnvInit = "_BERTH_INIT"

// Argv0 is the program name the runtime gives the init process, so that it
// reads well in ps.
const Argv0 = "berth-runtime-init"

// Mode says what the init is for.
type Mode string

const (
	// ModeCreate sets up a new container and execs its process.
	ModeCreate Mode = "create"
	// ModeExec joins an existing container and execs an extra process.
	ModeExec Mode = "exec"
)

// Config is what the parent sends the init: everything it needs, resolved
// by the parent where that can be done outside the container.
type Config struct {
	Mode Mode `json:"mode"`
	// Spec is the container's configuration; for ModeExec only Process,
	// Root and Linux are used.
	Spec *specs.Spec `json:"spec"`
	// Process is the process to exec (Spec.Process for create).
	Process *specs.Process `json:"process"`
	// Rootfs is the absolute host path of the root filesystem.
	Rootfs string `json:"rootfs"`
	// Seccomp is the compiled BPF program (struct sock_filter array in host
	// byte order), empty for none.
	Seccomp []byte `json:"seccomp,omitempty"`
	// SeccompFlags are passed to seccomp(2).
	SeccompFlags uint `json:"seccompFlags,omitempty"`
	// Trace makes the init print when it reaches each step (see
	// BERTH_RUNTIME_TRACE).
	Trace bool `json:"trace,omitempty"`
	// OwnMountNS is set when the init was cloned into a new mount
	// namespace.
	OwnMountNS bool `json:"ownMountNS,omitempty"`
	// NoPivot makes the init use MS_MOVE and chroot instead of pivot_root.
	NoPivot bool `json:"noPivot,omitempty"`
	// Cgroup describes the container's cgroup, for a "cgroup" mount.
	Cgroup CgroupMount `json:"cgroup"`
	// FifoFD is the exec FIFO (opened read-write by the parent) the init
	// reads one byte from before exec; -1 means wait for MsgStart on the
	// sync socket instead.
	FifoFD int `json:"fifoFD"`
	// ConsoleFD is a connected console socket to send the pty master to; -1
	// for none.
	ConsoleFD int `json:"consoleFD"`
	// MountNSFD is a mount namespace to join (setns) instead of using the
	// one the init was cloned into; -1 for none.
	MountNSFD int `json:"mountNSFD"`
	// RootFD is a detached mount (open_tree) of the root filesystem, made
	// in another mount namespace, to attach at Rootfs before anything
	// else (forkinit only); 0 for none.
	RootFD int `json:"rootFD,omitempty"`
	// PreserveFDs is how many descriptors after stdio the process keeps.
	PreserveFDs int `json:"preserveFDs"`
	// CreateContainerHooks run in the container's namespaces before
	// pivot_root, startContainer ones after the start signal: the parent
	// passes the state JSON the hooks get on stdin.
	State []byte `json:"state,omitempty"`
	// SyncCreateRuntime makes the init ask the parent to run the
	// createRuntime (and prestart) hooks once its mounts are done.
	SyncCreateRuntime bool `json:"syncCreateRuntime,omitempty"`
}

// CgroupMount says how to present the container's cgroup inside it.
type CgroupMount struct {
	// V2 is true on a unified hierarchy.
	V2 bool `json:"v2,omitempty"`
	// Paths maps a v1 controller mount name (as under /sys/fs/cgroup) to the
	// host directory of the container's cgroup in it; on v2, "" maps to the
	// container's cgroup directory.
	Paths map[string]string `json:"paths,omitempty"`
}

// Message types on the sync socket.
const (
	MsgConfig        = "config"        // parent → init: Config follows
	MsgCreateRuntime = "createRuntime" // init → parent: run createRuntime hooks, reply MsgOK
	MsgOK            = "ok"            // parent → init
	MsgReady         = "ready"         // init → parent: waiting for start
	MsgStart         = "start"         // parent → init: exec now (run, exec)
	MsgError         = "error"         // init → parent: setup failed
)

// Message is one message on the sync socket.
type Message struct {
	Type   string  `json:"type"`
	Config *Config `json:"config,omitempty"`
	// Error and Code describe a failure: Code is the exit status the CLI
	// should use (127 not found, 126 not executable, 1 otherwise).
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}
