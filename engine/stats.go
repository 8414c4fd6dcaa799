package engine

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/runtime"
)

// Stats is one sample of a container's resource use, read from its cgroup
// and its network namespace, with what CPU % needs: the host's CPU time
// at the same moment.
type Stats struct {
	ID, Name string
	Read     time.Time
	// CPUUsage is the container's CPU time, SystemUsage the host's (both
	// in nanoseconds), OnlineCPUs the host's CPU count.
	CPUUsage, SystemUsage uint64
	OnlineCPUs            int
	// MemUsage is the memory used less the inactive page cache, as docker
	// counts it; MemLimit the cgroup's limit, or the host's memory.
	MemUsage, MemLimit uint64
	NetRx, NetTx       uint64
	BlockRead          uint64
	BlockWrite         uint64
	PIDs               uint64
}

// CPUPercent is docker's CPU %: the container's share of the host's CPU
// time between two samples, times the number of CPUs.
func CPUPercent(prev, cur *Stats) float64 {
	if prev == nil || cur.SystemUsage <= prev.SystemUsage || cur.CPUUsage < prev.CPUUsage {
		return 0
	}
	cpu := float64(cur.CPUUsage - prev.CPUUsage)
	sys := float64(cur.SystemUsage - prev.SystemUsage)
	return cpu / sys * float64(cur.OnlineCPUs) * 100
}

// MemPercent is docker's MEM %.
func (s *Stats) MemPercent() float64 {
	if s.MemLimit == 0 {
		return 0
	}
	return float64(s.MemUsage) / float64(s.MemLimit) * 100
}

// ContainerStats samples a container's resource use. A container that is
// not running gives a sample of zeros.
func (e *Engine) ContainerStats(ctx context.Context, ref string) (*Stats, error) {
	c, err := e.Container(ctx, ref)
	if err != nil {
		return nil, err
	}
	s := &Stats{ID: c.ID, Name: c.DisplayName(), Read: time.Now()}
	if !c.State.Running {
		return s, nil
	}
	cs, err := e.cgroupStats(ctx, c)
	if err != nil {
		return nil, err
	}
	s.SystemUsage, s.OnlineCPUs = systemCPU()
	s.CPUUsage = cs.CpuStats.CpuUsage.TotalUsage
	mem := cs.MemoryStats
	inactive := mem.Stats["total_inactive_file"]
	if v, ok := mem.Stats["inactive_file"]; ok && inactive == 0 {
		inactive = v
	}
	s.MemUsage = mem.Usage.Usage
	if inactive < s.MemUsage {
		s.MemUsage -= inactive
	}
	s.MemLimit = mem.Usage.Limit
	if total := hostMemory(); total > 0 && (s.MemLimit == 0 || s.MemLimit > total) {
		s.MemLimit = total
	}
	for _, b := range cs.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(b.Op) {
		case "read":
			s.BlockRead += b.Value
		case "write":
			s.BlockWrite += b.Value
		}
	}
	s.PIDs = cs.PidsStats.Current
	s.NetRx, s.NetTx = netDev(c.State.Pid)
	return s, nil
}

// cgroupStats reads the statistics of the container's cgroup.
func (e *Engine) cgroupStats(ctx context.Context, c *container.Container) (*cgroups.Stats, error) {
	rt, err := e.ociRuntimeFor(c.HostConfig.Runtime)
	if err != nil {
		return nil, err
	}
	if r, ok := rt.(builtinRuntime); ok {
		rc, err := runtime.Load(ctx, r.root, c.ID)
		if err != nil {
			return nil, err
		}
		return rc.Stats(ctx)
	}
	// An external runtime makes the cgroup the spec names (see buildSpec).
	cg := &cgroups.Cgroup{Path: "/berth/" + c.ID, Resources: &cgroups.Resources{}}
	var m cgroups.Manager
	if cgroups.IsCgroup2UnifiedMode() {
		m, err = fs2.NewManager(cg, "")
	} else {
		m, err = fs.NewManager(cg, nil)
	}
	if err != nil {
		return nil, err
	}
	return m.GetStats()
}

// systemCPU returns the host's CPU time in nanoseconds (the first line of
// /proc/stat, in clock ticks of 1/100 s) and its CPU count.
func systemCPU() (uint64, int) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var total uint64
	cpus := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			cpus++
			continue
		}
		for _, v := range fields[1:8] {
			n, _ := strconv.ParseUint(v, 10, 64)
			total += n
		}
	}
	return total * (1e9 / 100), cpus
}

// hostMemory returns MemTotal from /proc/meminfo, in bytes.
func hostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// netDev sums the bytes received and sent on the interfaces (loopback
// aside) of the network namespace of process pid.
func netDev(pid int) (rx, tx uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}
