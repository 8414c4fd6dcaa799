package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		opts  []string
		flags uintptr
		data  string
	}{
		{[]string{"rbind", "ro"}, unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, ""},
		{[]string{"ro", "rw", "nosuid"}, unix.MS_NOSUID, ""},
		{[]string{"lowerdir=/a:/b", "nodev", "index=off"}, unix.MS_NODEV, "lowerdir=/a:/b,index=off"},
	}
	for _, tt := range tests {
		flags, data := parseOptions(tt.opts)
		if flags != tt.flags || strings.Join(data, ",") != tt.data {
			t.Errorf("parseOptions(%q) = %#x %q, want %#x %q", tt.opts, flags, data, tt.flags, tt.data)
		}
	}
}

// TestMountAllLongOptions mounts an overlay whose options are far longer
// than the page mount(2) takes.
func TestMountAllLongOptions(t *testing.T) {
	dir := t.TempDir()
	var lowers []string
	for i := range 150 {
		l := filepath.Join(dir, fmt.Sprintf("a-rather-long-layer-directory-name-%03d", i))
		if err := os.Mkdir(l, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(l, fmt.Sprint(i)), nil, 0o644)
		lowers = append(lowers, l)
	}
	for _, d := range []string{"upper", "work", "merged"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	m := overlayDriver{}.mounts(dir, lowers)
	if n := len(strings.Join(m[0].Options, ",")); n <= os.Getpagesize() {
		t.Fatalf("options are %d bytes, want more than a page", n)
	}
	target := filepath.Join(dir, "merged")
	if err := MountAll(m, target); err != nil {
		t.Fatal(err)
	}
	defer Unmount(target)
	entries, err := os.ReadDir(target)
	if err != nil || len(entries) != len(lowers) {
		t.Errorf("merged has %d entries (%v), want %d", len(entries), err, len(lowers))
	}
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(target); err != nil {
		t.Errorf("Unmount of an unmounted target = %v", err)
	}
}
