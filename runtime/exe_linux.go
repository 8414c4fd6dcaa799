package runtime

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// selfExe returns a descriptor of this binary that the container cannot
// write through (the CVE-2019-5736 class: a container process opening
// /proc/<init>/exe and rewriting the runtime binary once init has exec'd).
//
// The cheap way is a detached bind mount of the binary, made read-only:
// open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_RDONLY), about the
// cost of two system calls. The init is executed from it through
// /proc/self/fd/N, so /proc/<pid>/exe of the init points into a read-only
// mount nobody else sees and opening it for writing fails with EROFS. On
// kernels without the new mount API, the binary is copied into a sealed
// memfd instead (what runc did), which costs a copy of the binary.
func selfExe() (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV}
		if err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err == nil {
			return os.NewFile(uintptr(fd), "berth-runtime"), nil
		}
		unix.Close(fd)
	}
	return sealedCopy()
}

func sealedCopy() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth-runtime", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth-runtime")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy self: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal self: %w", err)
	}
	return f, nil
}
