// Package procfs reads the few facts berth needs about processes from
// /proc: when a process started, so that a recorded PID is never mistaken
// for a newer process that reused it.
package procfs

import (
	"fmt"
	"os"
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
