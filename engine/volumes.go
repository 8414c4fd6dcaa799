package engine

import (
	"context"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
	"github.com/berth-dev/berth/volume"
)

// Volume returns a volume by name.
func (e *Engine) Volume(ctx context.Context, name string) (*volume.Volume, error) {
	return e.volumes.Get(ctx, name)
}

// CreateVolume makes a named volume (or returns the existing one).
func (e *Engine) CreateVolume(ctx context.Context, name string, labels, opts map[string]string) (*volume.Volume, error) {
	return e.volumes.Create(ctx, name, labels, opts, false)
}

// Volumes lists volumes (filters: name, label, dangling).
func (e *Engine) Volumes(ctx context.Context, f filters.Args) ([]*volume.Volume, error) {
	all, err := e.volumes.List(ctx)
	if err != nil {
		return nil, err
	}
	used, err := e.volumesInUse(ctx)
	if err != nil {
		return nil, err
	}
	var out []*volume.Volume
	for _, v := range all {
		if f.Has("name") && !f.Match("name", v.Name) {
			continue
		}
		if !f.MatchLabels(v.Labels) {
			continue
		}
		if d, set, _ := f.Bool("dangling"); set && d == (used[v.Name] != "") {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// volumesInUse maps each volume some container mounts to one such container.
func (e *Engine) volumesInUse(ctx context.Context) (map[string]string, error) {
	list, err := e.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string]string{}
	for _, c := range list {
		for _, m := range c.Mounts {
			if m.Type == "volume" {
				used[m.Name] = c.ID
			}
		}
	}
	return used, nil
}

// RemoveVolume removes a volume no container uses.
func (e *Engine) RemoveVolume(ctx context.Context, name string, force bool) error {
	if _, err := e.volumes.Get(ctx, name); err != nil {
		if force && errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	used, err := e.volumesInUse(ctx)
	if err != nil {
		return err
	}
	if id := used[name]; id != "" {
		return errdefs.Conflict("remove %s: volume is in use - [%s]", name, id)
	}
	return e.volumes.Remove(ctx, name)
}

// PruneVolumes removes the anonymous volumes no container uses (all unused
// ones with all) that f selects, as docker volume prune does since 23.0,
// and returns their names and the space their data took.
func (e *Engine) PruneVolumes(ctx context.Context, all bool, f filters.Args) ([]string, int64, error) {
	vols, err := e.Volumes(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	used, err := e.volumesInUse(ctx)
	if err != nil {
		return nil, 0, err
	}
	var removed []string
	var reclaimed int64
	for _, v := range vols {
		if used[v.Name] != "" || (!all && !v.Anonymous) {
			continue
		}
		size := dirSize(v.Mountpoint)
		if err := e.volumes.Remove(ctx, v.Name); err == nil {
			removed = append(removed, v.Name)
			reclaimed += size
		}
	}
	return removed, reclaimed, nil
}
