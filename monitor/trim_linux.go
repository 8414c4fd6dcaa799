package monitor

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Trim gives back the memory a quiet monitor does not need: the Go heap's
// free pages (debug.FreeOSMemory), and the pages of its own executable it
// has mapped — code and read-only data that ran once, at start-up or for a
// command long done. Those are clean pages of a file: dropping them from
// the process (MADV_DONTNEED) costs nothing, and the few the monitor runs
// again come back from the page cache on their next use. A monitor watching
// a thousand containers thus costs what its working set costs, not what its
// binary weighs.
func Trim() {
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// address perms offset dev inode path
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		madvise(uintptr(start), uintptr(end-start))
	}
}

func madvise(addr, length uintptr) {
	unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_DONTNEED)
}
