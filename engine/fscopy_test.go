package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

// TestPlanCopy checks docker cp's destination rules.
func TestPlanCopy(t *testing.T) {
	d := t.TempDir()
	if err := os.Mkdir(filepath.Join(d, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := copySource{base: "src"}
	dir := copySource{base: "src", isDir: true}
	contents := copySource{base: "src", isDir: true, contentsOnly: true}
	for _, c := range []struct {
		name    string
		dst     string
		wantDir bool
		src     copySource
		want    copyPlan
		err     error
	}{
		{"file into a directory", "dir", false, file, copyPlan{filepath.Join(d, "dir"), "src"}, nil},
		{"file over a file", "file", false, file, copyPlan{d, "file"}, nil},
		{"file to a new name", "new", false, file, copyPlan{d, "new"}, nil},
		{"file to a missing directory", "new", true, file, copyPlan{}, errdefs.ErrNotFound},
		{"directory into a directory", "dir", false, dir, copyPlan{filepath.Join(d, "dir"), "src"}, nil},
		{"directory's contents into a directory", "dir", false, contents, copyPlan{filepath.Join(d, "dir"), ""}, nil},
		{"directory to a new name", "new", false, dir, copyPlan{d, "new"}, nil},
		{"directory over a file", "file", false, dir, copyPlan{}, errdefs.ErrInvalidArgument},
		{"under a missing parent", "no/such", false, file, copyPlan{}, errdefs.ErrNotFound},
	} {
		got, err := planCopy(filepath.Join(d, c.dst), c.wantDir, c.src)
		if c.err != nil {
			if !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: err %v, want class %v", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

// TestResolveParentInRoot keeps a final symlink as the link itself and
// resolves the rest inside the root.
func TestResolveParentInRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.Symlink("/", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := resolveParentInRoot(root, "/up/up/etc/passwd")
	if err != nil || got != filepath.Join(root, "etc", "passwd") {
		t.Errorf("resolveParentInRoot through links to /: %q, %v", got, err)
	}
	got, err = resolveParentInRoot(root, "/up")
	if err != nil || got != filepath.Join(root, "up") {
		t.Errorf("resolveParentInRoot of the link itself: %q, %v", got, err)
	}
}
