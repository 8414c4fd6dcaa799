package monitor

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReaper: each watched child's status reaches its channel, whether it
// exits before or after it is watched; a child the reaper does not watch
// stays its starter's to wait for, and does not hide the watched ones
// that exit after it.
func TestReaper(t *testing.T) {
	r, err := NewReaper()
	if err != nil {
		t.Fatal(err)
	}
	start := func(script string) *os.Process {
		t.Helper()
		p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", script}, &os.ProcAttr{Files: []*os.File{nil, os.Stderr, os.Stderr}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Not watched, and not waited for by its starter until the end: it
	// stays a zombie in front of the others.
	mine := exec.Command("sh", "-c", "exit 7")
	if err := mine.Start(); err != nil {
		t.Fatal(err)
	}
	early := start("exit 3")
	time.Sleep(100 * time.Millisecond) // exited before it is watched
	chEarly := r.Watch(early.Pid)
	late := []*os.Process{start("sleep 0.2; exit 4"), start("sleep 0.3; kill -9 $$")}
	chs := []<-chan unix.WaitStatus{chEarly}
	for _, p := range late {
		chs = append(chs, r.Watch(p.Pid))
	}
	for i, want := range []int{3, 4, 137} {
		select {
		case ws := <-chs[i]:
			if got := ExitCode(ws); got != want {
				t.Errorf("child %d: exit %d, want %d", i, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("child %d: no status", i)
		}
	}
	if n := r.Count(); n != 0 {
		t.Errorf("%d processes still watched", n)
	}
	if err := mine.Wait(); err == nil || mine.ProcessState.ExitCode() != 7 {
		t.Errorf("the unwatched child, waited for by its starter: %v, exit %d, want 7", err, mine.ProcessState.ExitCode())
	}
}
