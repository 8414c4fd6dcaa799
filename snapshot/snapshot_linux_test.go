package snapshot_test

import (
	"testing"

	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/testsuite"
)

func TestOverlay(t *testing.T) { testsuite.Run(t, open(t, "overlay")) }

func TestNative(t *testing.T) { testsuite.Run(t, open(t, "native")) }

func open(t *testing.T, driver string) func(*testing.T, string) snapshot.Snapshotter {
	return func(t *testing.T, root string) snapshot.Snapshotter {
		s, err := snapshot.New(root, driver)
		if err != nil {
			t.Fatal(err)
		}
		if s.Driver() != driver {
			t.Fatalf("Driver() = %q, want %q", s.Driver(), driver)
		}
		return s
	}
}

func TestNewProbes(t *testing.T) {
	root := t.TempDir()
	s, err := snapshot.New(root, "")
	if err != nil {
		t.Fatal(err)
	}
	// overlayfs works on this kernel; the probe must find it.
	if s.Driver() != "overlay" {
		t.Errorf("New(root, \"\").Driver() = %q, want overlay", s.Driver())
	}
	if s, err := snapshot.New(root, ""); err != nil || s.Driver() != "overlay" {
		t.Errorf("New again = %v, %v", s, err)
	}
	if _, err := snapshot.New(root, "zfs"); err == nil {
		t.Error("New with an unknown driver succeeded")
	}
}
