package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/errdefs"
)

// New opens (creating it if needed) the snapshot store of driver under root,
// in root/<driver>. driver is "overlay", "native", or "" to use overlay if
// overlayfs works on root's filesystem and native otherwise; the answer is
// found once by a real test mount and kept in root/probe.json.
func New(root, name string) (Snapshotter, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot store %s: %w", root, err)
	}
	if name == "" {
		ok, err := overlayWorks(root)
		if err != nil {
			return nil, err
		}
		name = "native"
		if ok {
			name = "overlay"
		}
	}
	var d driver
	switch name {
	case "overlay":
		d = overlayDriver{}
	case "native":
		d = nativeDriver{}
	default:
		return nil, errdefs.InvalidArgument("unknown snapshot driver %q (want overlay or native)", name)
	}
	s, err := newStore(filepath.Join(root, name), d)
	if err != nil {
		return nil, err
	}
	return s, nil
}

type probeResult struct {
	Overlay bool   `json:"overlay"`
	Error   string `json:"error,omitempty"`
}

// overlayWorks reports whether an overlay mount, with the options the
// overlay driver uses, works on root's filesystem, probing it the first time.
func overlayWorks(root string) (bool, error) {
	cache := filepath.Join(root, "probe.json")
	var res probeResult
	err := readJSON(cache, &res)
	if err == nil {
		return res.Overlay, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("snapshot store %s: %w", root, err)
	}
	if perr := probeOverlay(root); perr != nil {
		res.Error = perr.Error()
	} else {
		res.Overlay = true
	}
	if err := writeJSON(cache, res); err != nil {
		return false, fmt.Errorf("snapshot store %s: record overlay probe: %w", root, err)
	}
	return res.Overlay, nil
}

// probeOverlay mounts an overlay of two layers and a writable directory, as
// the overlay driver would, and checks that the bottom layer shows through.
func probeOverlay(root string) error {
	dir, err := os.MkdirTemp(root, "probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, d := range []string{"l1", "l2", "upper", "work", "merged"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(p("l1/x"), nil, 0o644); err != nil {
		return err
	}
	m := overlayDriver{}.mounts(dir, []string{p("l2"), p("l1")})
	if err := MountAll(m, p("merged")); err != nil {
		return err
	}
	defer Unmount(p("merged"))
	if _, err := os.Stat(p("merged/x")); err != nil {
		return fmt.Errorf("overlay probe: lower file not visible: %w", err)
	}
	return nil
}
