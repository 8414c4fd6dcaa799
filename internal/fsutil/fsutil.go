// Package fsutil owns the small file-system disciplines every store of berth
// relies on: atomic file replacement and advisory locks shared between
// processes.
package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic writes data to path through a synced temporary file in the
// same directory and a rename: a reader sees the old content or the new,
// never a mix, and a crash leaves one of the two.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomic(path, data, mode, true)
}

// WriteFileVolatile replaces path as WriteFileAtomic does for readers (the
// old content or the new, never a mix), without the fsync: for what need
// not survive a crash of the machine. After one, path may hold the old
// content, the new, or (on file systems that do not order a replacing
// rename after the data, unlike ext4) nothing.
func WriteFileVolatile(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomic(path, data, mode, false)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode, sync bool) error {
	s, err := stage(path, data, mode, sync)
	if err != nil {
		return err
	}
	return s.Commit()
}

// Staged is WriteFileAtomic in two steps: the new content is on disk,
// synced, under a temporary name, and replaces path when committed. Files
// staged side by side are synced side by side, and can still be made
// visible in the order their readers rely on.
type Staged struct {
	tmp, path string
}

// Stage writes data, synced, to a temporary file beside path.
func Stage(path string, data []byte, mode os.FileMode) (*Staged, error) {
	return stage(path, data, mode, true)
}

func stage(path string, data []byte, mode os.FileMode, sync bool) (*Staged, error) {
	var b [8]byte
	rand.Read(b[:])
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(b[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return nil, err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return &Staged{tmp: tmp, path: path}, nil
}

// Commit renames the staged file to its path.
func (s *Staged) Commit() error {
	if err := os.Rename(s.tmp, s.path); err != nil {
		os.Remove(s.tmp)
		return err
	}
	return nil
}

// Abort removes the staged file.
func (s *Staged) Abort() { os.Remove(s.tmp) }

// SyncDir fsyncs a directory, making renames into it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Lock is an exclusive flock(2) on a lock file, shared by every process that
// opens the same path. It is released by Unlock or when the process dies, so
// a killed berth never leaves a stale lock behind.
type Lock struct {
	f *os.File
}

// LockFile takes an exclusive lock on path, creating the file if needed,
// waiting for other holders. Holders keep a lock only for short, bounded
// work — never while waiting on a user or the network.
func LockFile(path string) (*Lock, error) {
	return lockFile(path, unix.LOCK_EX)
}

// RLockFile takes a shared lock on path.
func RLockFile(path string) (*Lock, error) {
	return lockFile(path, unix.LOCK_SH)
}

func lockFile(path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	return l.f.Close()
}
