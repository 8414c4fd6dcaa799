// Package container owns the record of a container — its configuration as
// the user asked for it, its state as the last observer saw it, in Docker's
// inspect shape — and the store that keeps those records on disk, safe for
// many berth processes at once: one JSON file per container, replaced
// atomically under a short per-container lock, and a name index whose
// entries are created exclusively so that a name is never given twice.
package container

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/image"
)

// Status values, as Docker reports them.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusRemoving   = "removing"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// Container is one container, serialized as Docker's container inspect.
type Container struct {
	ID              string `json:"Id"`
	Created         time.Time
	Path            string
	Args            []string
	State           State
	Image           digest.Digest // the image ID
	ResolvConfPath  string
	HostnamePath    string
	HostsPath       string
	LogPath         string
	Name            string // with Docker's leading slash
	RestartCount    int
	Driver          string
	Platform        string
	MountLabel      string
	ProcessLabel    string
	AppArmorProfile string
	ExecIDs         []string
	HostConfig      HostConfig
	GraphDriver     GraphDriver
	Mounts          []MountPoint
	Config          Config
	NetworkSettings NetworkSettings

	// Berth's own bookkeeping, not part of Docker's shape.
	Berth Private `json:"Berth"`
}

// Private is what berth keeps about a container beyond Docker's fields.
type Private struct {
	// RootfsKey is the key of the container's active snapshot.
	RootfsKey string `json:",omitempty"`
	// PidStart is the start time of State.Pid (/proc/PID/stat field 22),
	// so that a reused PID is never taken for the container.
	PidStart string `json:",omitempty"`
	// MonitorPid and MonitorStart identify the monitor process that
	// started State.Pid and alone records its exit: once it is gone, a
	// monitor started later knows nothing of the container.
	MonitorPid   int    `json:",omitempty"`
	MonitorStart string `json:",omitempty"`
	// StopRequested is set by stop and kill so that restart policies
	// (except always) leave the container down.
	StopRequested bool `json:",omitempty"`
	// ImageName is the image as the user named it.
	ImageName string `json:",omitempty"`
	// Publish are the -p specs; Aliases, IP and MAC the --network-alias,
	// --ip and --mac-address requests for the container's network.
	Publish []string `json:",omitempty"`
	Aliases []string `json:",omitempty"`
	IP      string   `json:",omitempty"`
	MAC     string   `json:",omitempty"`
}

// State is Docker's container state.
type State struct {
	Status     string
	Running    bool
	Paused     bool
	Restarting bool
	OOMKilled  bool
	Dead       bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Config is Docker's container Config: what the container runs.
type Config struct {
	Hostname     string
	Domainname   string
	User         string
	AttachStdin  bool
	AttachStdout bool
	AttachStderr bool
	ExposedPorts map[string]struct{} `json:",omitempty"`
	Tty          bool
	OpenStdin    bool
	StdinOnce    bool
	Env          []string
	Cmd          []string
	Healthcheck  *image.HealthConfig `json:",omitempty"`
	Image        string
	Volumes      map[string]struct{} `json:",omitempty"`
	WorkingDir   string
	Entrypoint   []string
	OnBuild      []string `json:",omitempty"`
	Labels       map[string]string
	StopSignal   string `json:",omitempty"`
	StopTimeout  *int   `json:",omitempty"`
}

// HostConfig is Docker's HostConfig: how the host runs the container.
type HostConfig struct {
	Binds           []string
	NetworkMode     string
	PortBindings    map[string][]PortBinding `json:",omitempty"`
	RestartPolicy   RestartPolicy
	AutoRemove      bool
	Runtime         string
	CapAdd          []string
	CapDrop         []string
	Dns             []string
	DnsSearch       []string
	ExtraHosts      []string
	Init            *bool `json:",omitempty"`
	Privileged      bool
	PublishAllPorts bool
	ReadonlyRootfs  bool
	SecurityOpt     []string
	Tmpfs           map[string]string `json:",omitempty"`
	Sysctls         map[string]string `json:",omitempty"`
	Mounts          []Mount           `json:",omitempty"`

	// Resources.
	Memory            int64
	MemoryReservation int64
	MemorySwap        int64
	NanoCpus          int64
	CpuShares         int64
	CpuPeriod         int64
	CpuQuota          int64
	CpusetCpus        string
	PidsLimit         *int64 `json:",omitempty"`
	Ulimits           []Ulimit
	Devices           []DeviceMapping
}

// RestartPolicy is Docker's --restart.
type RestartPolicy struct {
	Name              string // "", "no", "always", "unless-stopped", "on-failure"
	MaximumRetryCount int
}

// Mount is a --mount or -v request.
type Mount struct {
	Type     string // bind, volume, tmpfs
	Source   string
	Target   string
	ReadOnly bool
	// TmpfsSize and TmpfsMode apply to tmpfs mounts.
	TmpfsSize int64  `json:",omitempty"`
	TmpfsMode uint32 `json:",omitempty"`
	// Options are extra mount options (a -v mode such as z, or a tmpfs's).
	Options []string `json:",omitempty"`
}

// MountPoint is Docker's inspect view of a mount.
type MountPoint struct {
	Type        string
	Name        string `json:",omitempty"`
	Source      string
	Destination string
	Driver      string `json:",omitempty"`
	Mode        string
	RW          bool
	Propagation string
}

// Ulimit is one --ulimit.
type Ulimit struct {
	Name string
	Soft int64
	Hard int64
}

// DeviceMapping is one --device.
type DeviceMapping struct {
	PathOnHost        string
	PathInContainer   string
	CgroupPermissions string
}

// PortBinding is one host side of a published port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string
}

// GraphDriver names the storage driver and the container's directories.
type GraphDriver struct {
	Name string
	Data map[string]string
}

// NetworkSettings is Docker's inspect view of the container's network.
type NetworkSettings struct {
	SandboxKey string
	Ports      map[string][]PortBinding
	IPAddress  string
	Gateway    string
	MacAddress string
	Networks   map[string]*EndpointSettings
}

// EndpointSettings is the container's place on one network.
type EndpointSettings struct {
	Aliases     []string `json:",omitempty"`
	NetworkID   string
	EndpointID  string
	Gateway     string
	IPAddress   string
	IPPrefixLen int
	MacAddress  string
}

// ShortID is the 12-character ID Docker prints.
func (c *Container) ShortID() string { return c.ID[:12] }

// DisplayName is the name without Docker's leading slash.
func (c *Container) DisplayName() string {
	if len(c.Name) > 0 && c.Name[0] == '/' {
		return c.Name[1:]
	}
	return c.Name
}

// IsRunning reports whether the record says a process is alive (running,
// paused or restarting between runs).
func (s *State) IsRunning() bool { return s.Running }

// SetRunning records a start.
func (s *State) SetRunning(pid int, now time.Time) {
	*s = State{Status: StatusRunning, Running: true, Pid: pid, StartedAt: now}
}

// SetExited records an exit.
func (s *State) SetExited(code int, oom bool, now time.Time) {
	s.Status, s.Running, s.Paused, s.Restarting, s.Pid = StatusExited, false, false, false, 0
	s.ExitCode, s.OOMKilled, s.FinishedAt = code, oom, now
}
