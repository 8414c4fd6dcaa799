package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestAlive(t *testing.T) {
	st, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), st) {
		t.Fatal("this process is not alive")
	}
	if Alive(os.Getpid(), st+"0") {
		t.Fatal("another start time matched")
	}
	cmd := exec.Command("true")
	cmd.Run()
	if Alive(cmd.Process.Pid, "") {
		t.Fatal("an exited process is alive")
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:         `/a/b`,
		`/a\040b`:      `/a b`,
		`/a\134b`:      `/a\b`,
		`/trailing\04`: `/trailing\04`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMountsBelow finds a mount made below a directory, and not the
// directory's own.
func TestMountsBelow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "a b")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(sub, syscall.MNT_DETACH)
	got, err := MountsBelow(dir)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(sub)
	if len(got) != 1 || got[0] != real {
		t.Errorf("MountsBelow(%s) = %q, want [%s]", dir, got, real)
	}
}

// TestMounts reads the root's file system and, for a tmpfs mounted with a
// size, its type and options.
func TestMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := filepath.Join(t.TempDir(), "with space")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	ms, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	var root, ours *Mount
	for i := range ms {
		switch ms[i].Point {
		case "/":
			root = &ms[i]
		case dir:
			ours = &ms[i]
		}
	}
	if root == nil || root.FSType == "" {
		t.Errorf("no / with a file system type in %v", ms)
	}
	if ours == nil || ours.FSType != "tmpfs" || !strings.Contains(ours.SuperOptions, "size=1024k") {
		t.Errorf("the tmpfs at %q: %+v", dir, ours)
	}
}
