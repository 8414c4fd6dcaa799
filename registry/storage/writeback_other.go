//go:build !linux

package storage

import "os"

// startWriteback does nothing here: the fsync at commit writes everything.
func startWriteback(f *os.File, off, n int64) {}
