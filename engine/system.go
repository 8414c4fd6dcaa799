package engine

import (
	"io/fs"
	"path/filepath"
	"syscall"

	"context"
	"github.com/opencontainers/go-digest"
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
	if ids, err := e.containers.IDs(ctx); err == nil {
		info.Containers = len(ids)
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
	Images       []ImageUsage
	LayersSize   int64 // every unpacked layer, shared ones once
	Reclaimable  int64 // layers of images no container uses
	ActiveImages int

	Containers            int
	RunningContainers     int
	ContainersSize        int64 // the writable layers
	ContainersReclaimable int64 // the writable layers of stopped containers

	Volumes            int
	VolumesInUse       int
	VolumesSize        int64
	VolumesReclaimable int64
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
	// An image a container uses cannot be reclaimed, as docker system df
	// counts it.
	users := map[string]int{}
	pinned := map[string]bool{}
	du := &DiskUsage{}
	ctrs, err := e.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	usedImages := map[digest.Digest]int{}
	for _, c := range ctrs {
		usedImages[c.Image]++
		du.Containers++
		size := int64(0)
		if upper, err := e.snaps.UpperDir(ctx, c.Berth.RootfsKey); err == nil {
			size = dirSize(upper)
		}
		du.ContainersSize += size
		if c.State.Running {
			du.RunningContainers++
		} else {
			du.ContainersReclaimable += size
		}
		if r := db.Images[c.Image]; r != nil {
			for _, ch := range image.ChainIDs(r.DiffIDs) {
				pinned[ch.String()] = true
			}
		}
	}
	du.ActiveImages = len(usedImages)
	vols, err := e.volumes.List(ctx)
	if err != nil {
		return nil, err
	}
	inUse, err := e.volumesInUse(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range vols {
		du.Volumes++
		size := dirSize(v.Mountpoint)
		du.VolumesSize += size
		if inUse[v.Name] != "" {
			du.VolumesInUse++
		} else {
			du.VolumesReclaimable += size
		}
	}
	for _, s := range sums {
		for _, c := range image.ChainIDs(db.Images[s.ID].DiffIDs) {
			users[c.String()]++
		}
	}
	for c, n := range size {
		du.LayersSize += n
		if !pinned[c] {
			du.Reclaimable += n
		}
	}
	for _, s := range sums {
		u := ImageUsage{ImageSummary: s, Containers: usedImages[s.ID]}
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

// SystemPruneReport is what SystemPrune removed.
type SystemPruneReport struct {
	Containers, Networks, Volumes []string
	// Images are the images' untags and deletions.
	Images []DeleteResponse
	// BuildCache counts the build cache records removed.
	BuildCache int
	// SpaceReclaimed sums the space of all of them.
	SpaceReclaimed int64
}

// SystemPrune removes what nothing uses, as docker system prune does:
// stopped containers, networks without containers, with volumes the
// anonymous volumes no container uses, dangling images (every unused image
// with all), and the build cache; f (until, label) selects among them.
func (e *Engine) SystemPrune(ctx context.Context, all, volumes bool, f filters.Args) (*SystemPruneReport, error) {
	rep := &SystemPruneReport{}
	var reclaimed int64
	var err error
	if rep.Containers, reclaimed, err = e.PruneContainers(ctx, f); err != nil {
		return rep, err
	}
	rep.SpaceReclaimed += reclaimed
	if rep.Networks, err = e.NetworkPrune(ctx, f); err != nil {
		return rep, err
	}
	if volumes {
		if rep.Volumes, reclaimed, err = e.PruneVolumes(ctx, false, f); err != nil {
			return rep, err
		}
		rep.SpaceReclaimed += reclaimed
	}
	images, err := e.PruneImages(ctx, all, f)
	if err != nil {
		return rep, err
	}
	rep.Images = images.Deleted
	rep.SpaceReclaimed += images.SpaceReclaimed
	if rep.BuildCache, reclaimed, err = e.PruneBuildCache(ctx); err != nil {
		return rep, err
	}
	rep.SpaceReclaimed += reclaimed
	return rep, nil
}

// dirSize sums the sizes of the regular files under dir (each hard-linked
// inode once).
func dirSize(dir string) int64 {
	var total int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	return total
}
