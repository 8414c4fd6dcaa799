package snapshot

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// mountFlags are the mount(8) options that are mount(2) flags: set, or
// cleared when clear is true.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":         {false, unix.MS_RDONLY},
	"rw":         {true, unix.MS_RDONLY},
	"nosuid":     {false, unix.MS_NOSUID},
	"suid":       {true, unix.MS_NOSUID},
	"nodev":      {false, unix.MS_NODEV},
	"dev":        {true, unix.MS_NODEV},
	"noexec":     {false, unix.MS_NOEXEC},
	"exec":       {true, unix.MS_NOEXEC},
	"noatime":    {false, unix.MS_NOATIME},
	"relatime":   {false, unix.MS_RELATIME},
	"nodiratime": {false, unix.MS_NODIRATIME},
	"bind":       {false, unix.MS_BIND},
	"rbind":      {false, unix.MS_BIND | unix.MS_REC},
}

// parseOptions splits mount(8) options into mount(2) flags and data.
func parseOptions(options []string) (uintptr, []string) {
	var flags uintptr
	var data []string
	for _, o := range options {
		f, ok := mountFlags[o]
		switch {
		case !ok:
			data = append(data, o)
		case f.clear:
			flags &^= f.flag
		default:
			flags |= f.flag
		}
	}
	return flags, data
}

// MountAll mounts mounts on target, one over the other, in order. If one
// fails, the ones already made are undone.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := mount(m, target); err != nil {
			for range i {
				unix.Unmount(target, unix.MNT_DETACH)
			}
			return fmt.Errorf("mount %s %s on %s: %w", m.Type, m.Source, target, err)
		}
	}
	return nil
}

func mount(m Mount, target string) error {
	flags, data := parseOptions(m.Options)
	if m.Type == "bind" || flags&unix.MS_BIND != 0 {
		if err := unix.Mount(m.Source, target, "", unix.MS_BIND|(flags&unix.MS_REC), ""); err != nil {
			return err
		}
		if ro := flags &^ (unix.MS_BIND | unix.MS_REC); ro != 0 {
			// Bind mounts take their flags only when remounted.
			if err := unix.Mount("", target, "", ro|unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return err
			}
		}
		return nil
	}
	joined := strings.Join(data, ",")
	if len(joined) < os.Getpagesize() {
		return unix.Mount(m.Source, target, m.Type, flags, joined)
	}
	return mountLong(m.Type, m.Source, target, flags, data)
}

// mountLong mounts with data longer than mount(2) takes (a page), through
// the new mount API, which takes the options one at a time. overlayfs takes
// lower directories one by one as "lowerdir+" (Linux 6.8 and later), which
// lifts the limit on the number of layers a mount option string imposes.
func mountLong(fstype, source, target string, flags uintptr, data []string) error {
	fd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fd)
	if source != "" {
		if err := unix.FsconfigSetString(fd, "source", source); err != nil {
			return fmt.Errorf("fsconfig source: %w", err)
		}
	}
	for _, o := range data {
		key, value, hasValue := strings.Cut(o, "=")
		switch {
		case fstype == "overlay" && key == "lowerdir":
			for _, dir := range strings.Split(value, ":") {
				if err := unix.FsconfigSetString(fd, "lowerdir+", dir); err != nil {
					return fmt.Errorf("fsconfig lowerdir+ %s: %w", dir, err)
				}
			}
		case hasValue:
			err = unix.FsconfigSetString(fd, key, value)
		default:
			err = unix.FsconfigSetFlag(fd, key)
		}
		if err != nil {
			return fmt.Errorf("fsconfig %s: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	var attrs int
	for flag, attr := range map[uintptr]int{
		unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC,
		unix.MS_NOATIME: unix.MOUNT_ATTR_NOATIME, unix.MS_NODIRATIME: unix.MOUNT_ATTR_NODIRATIME,
	} {
		if flags&flag != 0 {
			attrs |= attr
		}
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// Unmount detaches every mount stacked on target. A target with nothing
// mounted on it is not an error.
func Unmount(target string) error {
	for {
		err := unix.Unmount(target, unix.MNT_DETACH)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EINVAL):
			return nil // not a mount point (any more)
		}
		return &os.PathError{Op: "unmount", Path: target, Err: err}
	}
}
