package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
)

// checkMounts turns the container's -v, --mount and --tmpfs requests and
// its image's VOLUMEs into its list of mount points, creating the named
// and anonymous volumes they need. A bind of a missing host path is an
// error (Podman's behaviour: Docker's -v would create the path, a surprise
// we do not repeat).
func (e *Engine) checkMounts(ctx context.Context, c *container.Container) error {
	hc := &c.HostConfig
	var mps []container.MountPoint
	add := func(mp container.MountPoint) error {
		if !path.IsAbs(mp.Destination) {
			return errdefs.InvalidArgument("invalid mount config: the destination %q is not an absolute path", mp.Destination)
		}
		mp.Destination = path.Clean(mp.Destination)
		if mp.Destination == "/" {
			return errdefs.InvalidArgument("invalid mount config: cannot mount over /")
		}
		if slices.ContainsFunc(mps, func(o container.MountPoint) bool { return o.Destination == mp.Destination }) {
			return errdefs.InvalidArgument("Duplicate mount point: %s", mp.Destination)
		}
		mps = append(mps, mp)
		return nil
	}
	for _, b := range hc.Binds {
		m, err := parseVolumeSpec(b)
		if err != nil {
			return err
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	hc.Binds = nil
	for dst, opts := range hc.Tmpfs {
		hc.Mounts = append(hc.Mounts, container.Mount{Type: "tmpfs", Target: dst, Options: splitOpts(opts)})
	}
	hc.Tmpfs = nil
	for _, m := range hc.Mounts {
		mp := container.MountPoint{Type: m.Type, Destination: m.Target, RW: !m.ReadOnly, Propagation: "rprivate"}
		if m.ReadOnly {
			mp.Mode = "ro"
		}
		switch m.Type {
		case "bind":
			if !filepath.IsAbs(m.Source) {
				return errdefs.InvalidArgument("invalid mount config for type \"bind\": invalid mount path: '%s' mount path must be absolute", m.Source)
			}
			if _, err := os.Stat(m.Source); err != nil {
				return errdefs.InvalidArgument("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
			}
			mp.Source = m.Source
			for _, o := range m.Options {
				if strings.Contains(o, "shared") || strings.Contains(o, "slave") || strings.Contains(o, "private") {
					mp.Propagation = o
				}
			}
		case "volume":
			mp.Name, mp.Driver, mp.Propagation = m.Source, "local", ""
			mp.Mode = strings.TrimPrefix(mp.Mode+",z", ",")
		case "tmpfs":
			mp.Propagation = ""
		default:
			return errdefs.InvalidArgument("invalid mount config: unsupported mount type %q", m.Type)
		}
		if err := add(mp); err != nil {
			return err
		}
	}
	// Anonymous volumes for the image's VOLUMEs that no mount covers.
	for v := range c.Config.Volumes {
		if slices.ContainsFunc(mps, func(o container.MountPoint) bool { return o.Destination == path.Clean(v) }) {
			continue
		}
		if err := add(container.MountPoint{Type: "volume", Destination: v, Driver: "local", RW: true}); err != nil {
			return err
		}
	}
	// Create the volumes last, once every request is known to be valid.
	for i := range mps {
		if mps[i].Type != "volume" {
			continue
		}
		v, err := e.volumes.Create(ctx, mps[i].Name, nil, nil, mps[i].Name == "")
		if err != nil {
			return err
		}
		mps[i].Name, mps[i].Source = v.Name, v.Mountpoint
	}
	c.Mounts = mps
	return nil
}

// parseVolumeSpec reads a -v value: [SRC:]DST[:OPTS].
func parseVolumeSpec(s string) (container.Mount, error) {
	parts := strings.Split(s, ":")
	var m container.Mount
	switch len(parts) {
	case 1:
		m = container.Mount{Type: "volume", Target: parts[0]}
	case 2, 3:
		if len(parts) == 2 && !strings.HasPrefix(parts[1], "/") {
			// DST:OPTS
			m = container.Mount{Type: "volume", Target: parts[0], Options: splitOpts(parts[1])}
			break
		}
		m = container.Mount{Source: parts[0], Target: parts[1], Type: "volume"}
		if strings.HasPrefix(parts[0], "/") || strings.HasPrefix(parts[0], ".") {
			m.Type = "bind"
		}
		if len(parts) == 3 {
			m.Options = splitOpts(parts[2])
		}
	default:
		return m, errdefs.InvalidArgument("invalid volume specification: '%s'", s)
	}
	if m.Target == "" || !strings.HasPrefix(m.Target, "/") {
		return m, errdefs.InvalidArgument("invalid volume specification: '%s'", s)
	}
	if m.Type == "bind" {
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return m, errdefs.InvalidArgument("invalid volume specification: '%s'", s)
		}
		m.Source = abs
	}
	for _, o := range m.Options {
		switch o {
		case "ro":
			m.ReadOnly = true
		case "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate", "consistent", "cached", "delegated":
		default:
			return m, errdefs.InvalidArgument("invalid mode: %s", o)
		}
	}
	return m, nil
}

func splitOpts(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// ParseMountFlag reads a --mount value: type=bind|volume|tmpfs,
// source=...,target=...,readonly, tmpfs-size=..., tmpfs-mode=...
func ParseMountFlag(s string) (container.Mount, error) {
	m := container.Mount{Type: "volume"}
	for _, kv := range strings.Split(s, ",") {
		k, v, hasV := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = !hasV || v == "true" || v == "1"
		case "bind-propagation":
			m.Options = append(m.Options, v)
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return m, errdefs.InvalidArgument("invalid value for tmpfs-size: %s", v)
			}
			m.TmpfsSize = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, errdefs.InvalidArgument("invalid value for tmpfs-mode: %s", v)
			}
			m.TmpfsMode = uint32(n)
		case "volume-nocopy", "consistency", "volume-driver", "volume-label", "volume-opt", "bind-nonrecursive":
		default:
			return m, errdefs.InvalidArgument("invalid field '%s' must be a key=value pair", kv)
		}
	}
	switch m.Type {
	case "bind", "volume", "tmpfs":
	default:
		return m, errdefs.InvalidArgument("invalid mount config: unsupported mount type %q", m.Type)
	}
	if m.Target == "" {
		return m, errdefs.InvalidArgument("invalid mount config: target is required")
	}
	if m.Type == "bind" && m.Source == "" {
		return m, errdefs.InvalidArgument("invalid mount config for type \"bind\": field Source must not be empty")
	}
	if m.Type == "tmpfs" {
		if m.TmpfsSize > 0 {
			m.Options = append(m.Options, "size="+strconv.FormatInt(m.TmpfsSize, 10))
		}
		if m.TmpfsMode > 0 {
			m.Options = append(m.Options, fmt.Sprintf("mode=%o", m.TmpfsMode))
		}
	}
	return m, nil
}

// mountSpecs returns the OCI mounts of a container's mount points, filling
// each volume from the image's content at its path on first use.
func (e *Engine) mountSpecs(ctx context.Context, c *container.Container, rootfs string) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, mp := range c.Mounts {
		switch mp.Type {
		case "bind", "volume":
			if mp.Type == "volume" {
				err := e.volumes.FillOnce(ctx, mp.Name, func(data string) error {
					return copyUp(ctx, rootfs, mp.Destination, data)
				})
				if err != nil {
					return nil, err
				}
			}
			opts := []string{"rbind"}
			if !mp.RW {
				opts = append(opts, "ro")
			}
			if mp.Propagation != "" {
				opts = append(opts, mp.Propagation)
			}
			out = append(out, specs.Mount{Destination: mp.Destination, Type: "bind", Source: mp.Source, Options: opts})
		case "tmpfs":
			opts := []string{"nosuid", "nodev", "noexec"}
			for _, m := range c.HostConfig.Mounts {
				if m.Type == "tmpfs" && path.Clean(m.Target) == mp.Destination {
					opts = append(opts, m.Options...)
				}
			}
			out = append(out, specs.Mount{Destination: mp.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
		}
	}
	return out, nil
}

// copyUp copies what the image has at dst (if anything) into a volume's
// data directory, keeping owners, modes and times: a tar stream from one
// tree into the other, through the same safe unpacker layers use.
func copyUp(ctx context.Context, rootfs, dst, data string) error {
	src, err := resolveInRoot(rootfs, dst)
	if err != nil {
		return nil // nothing there: an empty volume
	}
	st, err := os.Stat(src)
	if err != nil || !st.IsDir() {
		return nil
	}
	os.Chmod(data, st.Mode().Perm())
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.WriteTar(ctx, pw, src)) }()
	_, err = archive.Apply(ctx, data, pr, archive.ApplyOptions{Whiteouts: archive.WhiteoutNone})
	pr.Close()
	return err
}

// resolveInRoot resolves p inside root, following symlinks as if root were
// /, and returns the host path.
func resolveInRoot(root, p string) (string, error) {
	cur := "/"
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for hops := 0; len(parts) > 0; {
		next := parts[0]
		parts = parts[1:]
		if next == "" || next == "." {
			continue
		}
		if next == ".." {
			cur = path.Dir(cur)
			continue
		}
		cand := path.Join(cur, next)
		fi, err := os.Lstat(filepath.Join(root, cand))
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		} else if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return "", errors.New("too many symlinks")
			}
			t, err := os.Readlink(filepath.Join(root, cand))
			if err != nil {
				return "", err
			}
			if path.IsAbs(t) {
				cur = "/"
			}
			parts = append(strings.Split(strings.Trim(t, "/"), "/"), parts...)
			continue
		}
		cur = cand
	}
	return filepath.Join(root, cur), nil
}
