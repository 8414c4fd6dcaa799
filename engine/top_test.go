package engine

import (
	"slices"
	"testing"
)

func TestParsePS(t *testing.T) {
	out := []byte(`UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 09:00 ?        00:00:01 /sbin/init splash
root         412       1  0 09:01 ?        00:00:00 sleep 1000
nobody       413     412  0 09:01 pts/0    00:00:00 sh -c echo  two  spaces
`)
	res, err := parsePS(out, []int{412, 413})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Titles, []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}) {
		t.Errorf("titles %q", res.Titles)
	}
	if len(res.Processes) != 2 {
		t.Fatalf("kept %d rows, want 2: %q", len(res.Processes), res.Processes)
	}
	if got := res.Processes[1]; len(got) != 8 || got[7] != "sh -c echo two spaces" || got[0] != "nobody" {
		t.Errorf("row %q: want 8 columns, the command joined", got)
	}
	if _, err := parsePS([]byte("USER COMMAND\nroot init\n"), nil); err == nil {
		t.Error("ps output without a PID column was accepted")
	}
}

func TestCPUPercent(t *testing.T) {
	prev := &Stats{CPUUsage: 1e9, SystemUsage: 100e9, OnlineCPUs: 4}
	cur := &Stats{CPUUsage: 1.5e9, SystemUsage: 104e9, OnlineCPUs: 4}
	// Half a CPU-second out of 4 s of host CPU time over 4 CPUs: 50%.
	if got := CPUPercent(prev, cur); got != 50 {
		t.Errorf("CPUPercent = %v, want 50", got)
	}
	if got := CPUPercent(nil, cur); got != 0 {
		t.Errorf("CPUPercent without a previous sample = %v, want 0", got)
	}
	if got := CPUPercent(cur, cur); got != 0 {
		t.Errorf("CPUPercent of the same sample = %v, want 0", got)
	}
}
