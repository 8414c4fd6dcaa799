package containers

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCp copies both ways, into running and stopped containers, keeping
// modes, with Docker's rules for directories and tar streams.
func TestCp(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "cp", "busybox", "sleep", "1004")
	host := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(host, "dir", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(host, "dir", "sub", "script"), []byte("#!/bin/sh\necho ran\n"), 0o750))
	must(os.Chmod(filepath.Join(host, "dir", "sub"), 0o711))
	must(os.WriteFile(filepath.Join(host, "file"), []byte("content\n"), 0o604))

	// Host to container: a file into a directory, a directory into a
	// directory, a directory's contents (/.) to a new directory.
	e.must("cp", filepath.Join(host, "file"), "cp:/tmp/")
	e.must("cp", filepath.Join(host, "dir"), "cp:/tmp")
	e.must("cp", filepath.Join(host, "dir")+"/.", "cp:/contents")
	out := e.must("exec", "cp", "stat", "-c", "%n %a %s", "/tmp/file", "/tmp/dir/sub", "/tmp/dir/sub/script", "/contents/sub/script")
	want := "/tmp/file 604 8\n/tmp/dir/sub 711 4096\n/tmp/dir/sub/script 750 19\n/contents/sub/script 750 19"
	if out != want {
		t.Errorf("after cp into the container, stat says:\n%s\nwant:\n%s", out, want)
	}
	if out := e.must("exec", "cp", "/tmp/dir/sub/script"); out != "ran" {
		t.Errorf("the copied script printed %q", out)
	}

	// Container to host: a file to a new name, a directory to a new one.
	e.must("cp", "cp:/tmp/dir/sub/script", filepath.Join(host, "back"))
	e.must("cp", "cp:/tmp/dir", filepath.Join(host, "dirback"))
	for p, mode := range map[string]fs.FileMode{"back": 0o750, "dirback/sub": fs.ModeDir | 0o711, "dirback/sub/script": 0o750} {
		fi, err := os.Stat(filepath.Join(host, p))
		if err != nil || fi.Mode() != mode {
			t.Errorf("copied out %s: %v, %v; want mode %v", p, fi.Mode(), err, mode)
		}
	}

	// Tar streams: out to stdout, in from stdin.
	res := e.run("cp", "cp:/tmp/dir", "-")
	if res.Code != 0 {
		t.Fatalf("cp to -: %s", res)
	}
	names := tarNames(t, []byte(res.Stdout))
	if !slices.Equal(names, []string{"dir/", "dir/sub/", "dir/sub/script"}) {
		t.Errorf("cp cp:/tmp/dir - streams %q", names)
	}
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	tw.WriteHeader(&tar.Header{Name: "fromtar", Mode: 0o640, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("tar"))
	tw.Close()
	if res := e.RunInput(&in, "cp", "-", "cp:/tmp"); res.Code != 0 {
		t.Fatalf("cp - cp:/tmp: %s", res)
	}
	if out := e.must("exec", "cp", "stat", "-c", "%a %s", "/tmp/fromtar"); out != "640 3" {
		t.Errorf("the file from the tar stream: %q", out)
	}

	// A missing source, a missing destination directory.
	if res := e.run("cp", "cp:/nosuch", host); res.Code != 125 || !strings.Contains(res.Stderr, "Could not find the file /nosuch in container cp") {
		t.Errorf("cp of a missing file: %s", res)
	}
	if res := e.run("cp", filepath.Join(host, "file"), "cp:/no/such/dir/x"); res.Code != 125 {
		t.Errorf("cp into a missing directory: %s", res)
	}

	// A running container's volumes and tmpfs mounts, as its processes
	// see them.
	e.must("run", "-d", "--name", "vols", "-v", "cpvol:/data", "--tmpfs", "/scratch", "busybox", "sleep", "1011")
	e.must("cp", filepath.Join(host, "file"), "vols:/data/")
	e.must("cp", filepath.Join(host, "file"), "vols:/scratch/f")
	if out := e.must("exec", "vols", "cat", "/data/file", "/scratch/f"); out != "content\ncontent" {
		t.Errorf("files copied into a volume and a tmpfs read %q", out)
	}
	e.must("cp", "vols:/etc/hostname", filepath.Join(host, "hostname"))
	if b, _ := os.ReadFile(filepath.Join(host, "hostname")); strings.TrimSpace(string(b)) != e.inspect("vols", "{{.Config.Hostname}}") {
		t.Errorf("cp of /etc/hostname gave %q, not the container's name", b)
	}

	// Into and out of a stopped container, which then has the file.
	e.must("create", "--name", "stopped", "busybox", "cat", "/copied")
	e.must("cp", filepath.Join(host, "file"), "stopped:/copied")
	e.must("cp", "stopped:/copied", filepath.Join(host, "fromstopped"))
	if b, err := os.ReadFile(filepath.Join(host, "fromstopped")); err != nil || string(b) != "content\n" {
		t.Errorf("copied back from the stopped container: %q, %v", b, err)
	}
	if out := e.must("start", "-a", "stopped"); out != "content" {
		t.Errorf("the stopped container, started, reads %q", out)
	}
	if m := mountsUnder(filepath.Join(e.RunRoot, "mnt")); len(m) > 0 {
		t.Errorf("cp left mounts: %q", m)
	}
}

// TestCpWhiteoutNames: a file whose name looks like a layer's whiteout
// (.wh.x) is copied in as that file, not read as the deletion of x, into
// a stopped container as into a running one.
func TestCpWhiteoutNames(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), ".wh.passwd")
	if err := os.WriteFile(src, []byte("not a whiteout\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("create", "--name", "wh", "busybox", "sleep", "1014")
	e.must("cp", src, "wh:/etc/")
	e.must("start", "wh")
	if out := e.must("exec", "wh", "cat", "/etc/.wh.passwd"); out != "not a whiteout" {
		t.Errorf("/etc/.wh.passwd holds %q", out)
	}
	if res := e.run("exec", "wh", "grep", "-c", "root", "/etc/passwd"); res.Code != 0 {
		t.Errorf("/etc/passwd is gone after copying in .wh.passwd: %s", res)
	}
}

// TestCpSymlinkEscape checks that a symlink to / inside the container
// does not let cp write or read outside the container's root.
func TestCpSymlinkEscape(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "esc", "busybox", "sleep", "1005")
	e.must("exec", "esc", "ln", "-s", "/", "/escape")
	e.must("exec", "esc", "ln", "-s", "../../../../../../../..", "/tmp/up")
	host := t.TempDir()
	victim := filepath.Join(host, "victim")
	src := filepath.Join(host, "payload")
	if err := os.WriteFile(src, []byte("payload\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The host path the payload would reach if the links were followed
	// on the host is the test's own directory; the container has a
	// directory of the same path, where the copy must land.
	e.must("exec", "esc", "mkdir", "-p", host)
	for _, dst := range []string{"esc:/escape" + victim, "esc:/tmp/up" + victim} {
		e.must("cp", src, dst)
		if _, err := os.Lstat(victim); err == nil {
			t.Fatalf("cp %s wrote %s on the host", dst, victim)
		}
		if out := e.must("exec", "esc", "cat", victim); out != "payload" {
			t.Errorf("cp %s: the container's %s holds %q", dst, victim, out)
		}
		e.must("exec", "esc", "rm", victim)
	}
	// A tar stream whose entries go through the link is refused or stays
	// inside.
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	tw.WriteHeader(&tar.Header{Name: "escape" + victim, Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("bad"))
	tw.Close()
	e.RunInput(&in, "cp", "-", "esc:/")
	if _, err := os.Lstat(victim); err == nil {
		t.Fatalf("cp - through a symlink wrote %s on the host", victim)
	}
	// Reading through the link reads the container's files, not the host's.
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.must("exec", "esc", "sh", "-c", "echo container file > "+filepath.Join(host, "secret"))
	e.must("cp", "esc:/escape"+filepath.Join(host, "secret"), filepath.Join(host, "stolen"))
	if b, err := os.ReadFile(filepath.Join(host, "stolen")); err != nil || string(b) != "container file\n" {
		t.Fatalf("cp through a symlink to / read %q, %v; want the container's file", b, err)
	}
}

// TestExport writes the container's whole file system as a tar.
func TestExport(t *testing.T) {
	e := newEnv(t)
	e.must("create", "--name", "ex", "busybox")
	out := filepath.Join(t.TempDir(), "ex.tar")
	e.must("export", "-o", out, "ex")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, b)
	if !slices.Contains(names, "bin/busybox") || !slices.Contains(names, "etc/passwd") {
		t.Errorf("export lacks bin/busybox or etc/passwd: %d entries", len(names))
	}
	// To stdout, of a running container, with its changes.
	e.must("run", "-d", "--name", "run", "busybox", "sleep", "1006")
	e.must("exec", "run", "touch", "/added")
	res := e.run("export", "run")
	if res.Code != 0 || !slices.Contains(tarNames(t, []byte(res.Stdout)), "added") {
		t.Errorf("export of a running container lacks its new file: %s", res.Stderr)
	}
}

// TestDiffAndCommit changes a container, lists the changes, commits them
// and runs the new image, on both storage drivers.
func TestDiffAndCommit(t *testing.T) {
	for _, driver := range []string{"overlay", "native"} {
		t.Run(driver, func(t *testing.T) { testDiffAndCommit(t, driver) })
	}
}

func testDiffAndCommit(t *testing.T, driver string) {
	e := newEnvDriver(t, driver)
	if got := e.must("info", "--format", "{{.Driver}}"); got != driver {
		t.Fatalf("storage driver %q, want %s", got, driver)
	}
	e.must("run", "-d", "--name", "dc", "busybox", "sleep", "1007")
	e.must("exec", "dc", "sh", "-c", "echo new > /added && echo more >> /etc/passwd && rm /bin/vi && mkdir -p /new/dir && rm -r /root")
	diff := strings.Split(e.must("diff", "dc"), "\n")
	for _, want := range []string{"A /added", "C /etc", "C /etc/passwd", "C /bin", "D /bin/vi", "A /new", "A /new/dir", "D /root"} {
		if !slices.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, strings.Join(diff, "\n"))
		}
	}
	for _, l := range diff {
		if strings.HasPrefix(l, "A /etc/host") || strings.HasPrefix(l, "A /etc/resolv") {
			t.Errorf("diff shows berth's own mount point: %q", l)
		}
	}

	id := e.must("commit", "-a", "tester", "-m", "the message", "-c", `CMD ["cat", "/added"]`, "dc", "committed:v1")
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Errorf("commit printed %q, want an image ID", id)
	}
	if out := e.must("run", "--rm", "committed:v1"); out != "new" {
		t.Errorf("the committed image's CMD printed %q, want new", out)
	}
	if res := e.run("run", "--rm", "committed:v1", "ls", "/bin/vi"); res.Code == 0 {
		t.Errorf("/bin/vi, deleted before the commit, is in the image: %s", res)
	}
	if res := e.run("run", "--rm", "committed:v1", "ls", "-d", "/new/dir", "/root"); !strings.Contains(res.Stdout, "/new/dir") || !strings.Contains(res.Stderr, "/root") {
		t.Errorf("the committed image should have /new/dir and no /root: %s", res)
	}
	if out := e.must("run", "--rm", "committed:v1", "tail", "-n1", "/etc/passwd"); out != "more" {
		t.Errorf("the changed /etc/passwd ends in %q", out)
	}
	if got := e.must("image", "inspect", "-f", "{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}", "committed:v1"); got != `tester|the message|["cat","/added"]` {
		t.Errorf("committed image: %q", got)
	}
	if h := e.must("history", "committed:v1"); !strings.Contains(h, "the message") {
		t.Errorf("history of the committed image lacks its entry:\n%s", h)
	}
	// The container still runs after the (paused) commit.
	if s := e.inspect("dc", "{{.State.Status}}"); s != "running" {
		t.Errorf("container after commit is %s", s)
	}
	// A stopped container commits too, untagged.
	e.must("stop", "-t", "0", "dc")
	if id2 := e.must("commit", "dc"); !strings.HasPrefix(id2, "sha256:") {
		t.Errorf("commit of a stopped container printed %q", id2)
	}
}

// tarNames lists the entry names of a tar stream.
func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		names = append(names, h.Name)
	}
}
