package procfs

import (
	"os"
	"os/exec"
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
