package fsutil

import (
	"errors"

	"golang.org/x/sys/unix"
)

// topDirFlag is FS_TOPDIR_FL, chattr's +T: "the top of a directory
// hierarchy".
const topDirFlag = 0x00020000

// SpreadSubdirs marks dir as the top of a directory hierarchy, where the
// file system supports it (ext2, ext3, ext4; elsewhere it does nothing).
// ext4 then places each new subdirectory of dir in another block group
// (the Orlov allocator's spreading, as for the subdirectories of /), and
// the files made in a subdirectory follow it there.
//
// berth marks the directories that get a subdirectory for every container
// (the container store, the snapshotter's staging directory). Left in one
// group, every container's files would be allocated from the same inode
// bitmap, and on ext4 without a journal each allocation steps over every
// inode of its group freed in the last minute (more while the inode table
// is not yet written back): the overlay mount of each container frees
// three, so starting containers one after another got slower with each
// (11 ms to 18 ms a `run -d` over a hundred), and much slower right after
// a large removal.
func SpreadSubdirs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return nil // a file system without inode flags (tmpfs, ...)
		}
		return err
	}
	if flags&topDirFlag != 0 {
		return nil
	}
	err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|topDirFlag))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
		return nil // flags, but not this one (xfs, btrfs, ...)
	}
	return err
}
