// Package procfs reads the few facts berth needs from /proc: when a
// process started, so that a recorded PID is never mistaken for a newer
// process that reused it, and what is mounted where.
package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// StartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/PID/stat), as a string to compare.
func StartTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return f[19], nil
}

// Alive reports whether pid is the process that started at start (and not
// a zombie).
func Alive(pid int, start string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return false
	}
	return start == "" || f[19] == start
}

// Mount is one line of /proc/self/mountinfo: where, what file system
// from what source, and the file system's own options (for cgroup v1, its
// controllers).
type Mount struct {
	Point, FSType, Source, SuperOptions string
}

// Mounts lists this process's mounts, in mountinfo's order.
func Mounts() ([]Mount, error) { return mounts("/proc/self/mountinfo") }

func mounts(mountinfo string) ([]Mount, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return nil, err
	}
	var out []Mount
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		m := Mount{Point: unescapeMountPath(f[4])}
		// The file system type follows the "-" that ends the optional
		// fields.
		for i := 5; i+1 < len(f); i++ {
			if f[i] == "-" {
				m.FSType = f[i+1]
				if i+3 < len(f) {
					m.Source, m.SuperOptions = f[i+2], f[i+3]
				}
				break
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// MountsBelow lists the mount points strictly below dir, deepest first.
func MountsBelow(dir string) ([]string, error) { return mountsBelow("/proc/self/mountinfo", dir) }

// ThreadMountsBelow is MountsBelow in the mount namespace of the calling
// thread (locked to its goroutine), which may not be the process's.
func ThreadMountsBelow(dir string) ([]string, error) {
	return mountsBelow("/proc/thread-self/mountinfo", dir)
}

func mountsBelow(mountinfo, dir string) ([]string, error) {
	ms, err := mounts(mountinfo)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	var out []string
	for _, m := range ms {
		if strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
