package engine

import (
	"context"
	"os"
	goruntime "runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/image"
)

// Version is berth's version, set at build time with
// -ldflags "-X github.com/berth-dev/berth/engine.Version=...".
var Version = "0.1.0-dev"

// SystemInfo is what `berth info` shows.
type SystemInfo struct {
	ServerVersion   string
	Driver          string
	CgroupVersion   string
	CgroupDriver    string
	KernelVersion   string
	OperatingSystem string
	OSType          string
	Architecture    string
	NCPU            int
	MemTotal        int64
	DockerRootDir   string
	RunRoot         string
	Images          int
	Containers      int
}

// Info describes the host and the store.
func (e *Engine) Info(ctx context.Context) (*SystemInfo, error) {
	db, err := e.images.Load(ctx)
	if err != nil {
		return nil, err
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	info := &SystemInfo{
		ServerVersion:   Version,
		Driver:          e.snaps.Driver(),
		CgroupVersion:   cgroupVersion(),
		CgroupDriver:    "cgroupfs",
		KernelVersion:   unix.ByteSliceToString(uts.Release[:]),
		OperatingSystem: osName(),
		OSType:          goruntime.GOOS,
		Architecture:    unix.ByteSliceToString(uts.Machine[:]),
		NCPU:            goruntime.NumCPU(),
		MemTotal:        int64(si.Totalram) * int64(si.Unit),
		DockerRootDir:   e.root,
		RunRoot:         e.runRoot,
		Images:          len(db.Images),
	}
	return info, nil
}

// cgroupVersion is "2" on a unified host, "1" on legacy and hybrid ones.
func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

func osName() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// DiskUsage is what `system df` shows.
type DiskUsage struct {
	Images      []ImageUsage
	LayersSize  int64 // every unpacked layer, shared ones once
	Reclaimable int64 // layers of images no container uses
}

// ImageUsage is one image's share of the disk.
type ImageUsage struct {
	ImageSummary
	SharedSize, UniqueSize int64
	Containers             int
}

// DiskUsage sums the space used by images (and later containers, volumes
// and the build cache).
func (e *Engine) DiskUsage(ctx context.Context) (*DiskUsage, error) {
	sums, err := e.Images(ctx, ImageListOptions{All: true})
	if err != nil {
		return nil, err
	}
	db, err := e.images.Load(ctx)
	if err != nil {
		return nil, err
	}
	layers, err := e.snaps.Layers(ctx)
	if err != nil {
		return nil, err
	}
	size := map[string]int64{}
	for _, l := range layers {
		size[l.ChainID.String()] = l.Size
	}
	// Containers will pin their images' layers; until an image has one,
	// all of its layers can be reclaimed, as docker system df counts them.
	users := map[string]int{}
	pinned := map[string]bool{}
	for _, s := range sums {
		for _, c := range image.ChainIDs(db.Images[s.ID].DiffIDs) {
			users[c.String()]++
		}
	}
	du := &DiskUsage{}
	for c, n := range size {
		du.LayersSize += n
		if !pinned[c] {
			du.Reclaimable += n
		}
	}
	for _, s := range sums {
		u := ImageUsage{ImageSummary: s}
		for _, c := range image.ChainIDs(db.Images[s.ID].DiffIDs) {
			if users[c.String()] > 1 {
				u.SharedSize += size[c.String()]
			} else {
				u.UniqueSize += size[c.String()]
			}
		}
		du.Images = append(du.Images, u)
	}
	return du, nil
}

// SystemPrune removes what nothing uses: dangling images (every unused
// image with all), then unreferenced data.
func (e *Engine) SystemPrune(ctx context.Context, all bool, f filters.Args) (*PruneReport, error) {
	return e.PruneImages(ctx, all, f)
}
