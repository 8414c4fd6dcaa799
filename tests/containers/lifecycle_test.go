package containers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunForeground: the exit status is the process's own, stdout and
// stderr stay apart.
func TestRunForeground(t *testing.T) {
	e := newEnv(t)
	res := e.run("run", "--rm", "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 7")
	if res.Code != 7 {
		t.Errorf("exit status %d, want 7\n%s", res.Code, res)
	}
	if res.Stdout != "to-out\n" || res.Stderr != "to-err\n" {
		t.Errorf("stdout %q, stderr %q; want \"to-out\\n\", \"to-err\\n\"", res.Stdout, res.Stderr)
	}
}

// TestDetachedLifecycle: run -d, logs, stop with the stop signal, start
// again, restart, wait, rm.
func TestDetachedLifecycle(t *testing.T) {
	e := newEnv(t)
	// The shell exits on SIGUSR1 (its --stop-signal) and ignores SIGTERM.
	script := `trap "echo got-usr1; exit 11" USR1; trap "" TERM; i=0; while true; do i=$((i+1)); echo line$i; echo err$i >&2; sleep 0.05; done`
	id := e.must("run", "-d", "--name", "life", "--stop-signal", "USR1", "busybox", "sh", "-c", script)
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-digit ID", id)
	}
	e.waitFor("five lines are logged", func() bool { return strings.Contains(e.must("logs", "life"), "line5\n") })

	logs := e.run("logs", "life")
	if !strings.HasPrefix(logs.Stdout, "line1\nline2\n") || !strings.HasPrefix(logs.Stderr, "err1\nerr2\n") {
		t.Errorf("logs: stdout %q..., stderr %q...", logs.Stdout[:min(20, len(logs.Stdout))], logs.Stderr[:min(20, len(logs.Stderr))])
	}
	if tail := e.run("logs", "--tail", "2", "life"); strings.Count(tail.Stdout, "\n")+strings.Count(tail.Stderr, "\n") != 2 {
		t.Errorf("logs --tail 2 gave %q and %q, want 2 lines", tail.Stdout, tail.Stderr)
	}
	tsRes := e.run("logs", "-t", "--tail", "1", "life")
	ts := tsRes.Stdout + tsRes.Stderr // the last line is on either
	if f := strings.Fields(ts); len(f) < 2 {
		t.Errorf("logs -t: %q", ts)
	} else if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
		t.Errorf("logs -t: %q does not start with a timestamp: %v", ts, err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if out := e.run("logs", "--since", future, "life"); out.Stdout != "" || out.Stderr != "" {
		t.Errorf("logs --since an hour ahead gave %q %q, want nothing", out.Stdout, out.Stderr)
	}

	// stop sends USR1, the image of a graceful stop: exit 11, well before
	// the kill after -t.
	e.must("stop", "-t", "30", "life")
	if got := e.inspect("life", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}"); got != "exited 11 false" {
		t.Errorf("after stop: %s, want exited 11 false (the stop signal honoured)", got)
	}
	if !strings.Contains(e.must("logs", "life"), "got-usr1") {
		t.Error("the container's trap did not run on stop")
	}

	// The shell is PID 1: a signal it has no trap for yet is ignored.
	// Each run logs line1 once its traps are set.
	runs := 1
	trapped := func() {
		runs++
		e.waitFor("run "+strconv.Itoa(runs)+" has set its traps", func() bool {
			return strings.Count(e.must("logs", "life"), "line1\n") >= runs
		})
	}
	e.must("start", "life")
	if got := e.inspect("life", "{{.State.Running}}"); got != "true" {
		t.Fatalf("after start: Running %s", got)
	}
	trapped()
	first := e.pid("life")
	e.must("restart", "-t", "30", "life")
	if pid := e.pid("life"); pid == first {
		t.Errorf("restart kept pid %d", pid)
	}
	trapped()

	// A stop signal the process ignores: killed after -t.
	e.must("stop", "-s", "TERM", "-t", "1", "life")
	if got := e.inspect("life", "{{.State.ExitCode}}"); got != "137" {
		t.Errorf("stop of a process ignoring the signal: exit code %s, want 137 (SIGKILL after -t)", got)
	}
	if got := e.must("wait", "life"); got != "137" {
		t.Errorf("wait of the stopped container: %q, want 137", got)
	}

	// wait blocks until the exit.
	e.must("start", "life")
	trapped()
	done := make(chan string, 1)
	go func() { done <- strings.TrimSpace(e.Run("wait", "life").Stdout) }()
	e.must("kill", "-s", "USR1", "life")
	if got := <-done; got != "11" {
		t.Errorf("wait: %q, want 11", got)
	}
	if res := e.run("rm", "life"); res.Code != 0 {
		t.Errorf("rm of the exited container: %s", res)
	}
	if left := e.leftovers(id, 0); len(left) > 0 {
		t.Errorf("left behind:\n%s", strings.Join(left, "\n"))
	}
}

// TestLogsFollow: logs -f streams until the container exits.
func TestLogsFollow(t *testing.T) {
	e := newEnv(t)
	id := e.must("run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.2; done")
	res := e.run("logs", "-f", id)
	if res.Code != 0 || res.Stdout != "n1\nn2\nn3\n" {
		t.Errorf("logs -f: %s\nwant n1 n2 n3", res)
	}
}

// TestRunOptions: what run's flags set is what the process sees.
func TestRunOptions(t *testing.T) {
	e := newEnv(t)
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\nFROM_FILE=yes\n\nBOTH=file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string // run --rm ARGS
		want string   // the whole stdout, trimmed
	}{
		{"env", []string{"-e", "A=1", "-e", "B=two words", "busybox", "sh", "-c", `echo "$A,$B"`}, "1,two words"},
		{"env-file", []string{"--env-file", envFile, "-e", "BOTH=flag", "busybox", "sh", "-c", `echo "$FROM_FILE,$BOTH"`}, "yes,flag"},
		{"workdir", []string{"-w", "/tmp", "busybox", "pwd"}, "/tmp"},
		{"missing workdir is made", []string{"-w", "/tmp/new", "busybox", "pwd"}, "/tmp/new"},
		{"user by name", []string{"-u", "nobody", "busybox", "id"}, "uid=65534(nobody) gid=65534(nogroup)"},
		{"user by uid:gid", []string{"-u", "1234:5678", "busybox", "id", "-u"}, "1234"},
		{"entrypoint", []string{"--entrypoint", "/bin/echo", "busybox", "a", "b"}, "a b"},
		{"entrypoint cleared", []string{"--entrypoint", "", "busybox", "echo", "c"}, "c"},
		{"hostname", []string{"--hostname", "boat", "busybox", "hostname"}, "boat"},
		{"read-only", []string{"--read-only", "busybox", "sh", "-c", "touch /x 2>/dev/null || echo refused"}, "refused"},
		{"tmpfs on read-only", []string{"--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c", "touch /scratch/x && grep -c ' /scratch tmpfs ' /proc/mounts"}, "1"},
		{"network none", []string{"--network", "none", "busybox", "ls", "/sys/class/net"}, "lo"},
		{"cap-drop ALL", []string{"--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status"}, "CapEff:\t0000000000000000"},
		{"default caps", []string{"busybox", "grep", "CapEff", "/proc/self/status"}, "CapEff:\t00000000a80425fb"},
		// Without CHOWN (bit 0), with NET_ADMIN (bit 12).
		{"cap-drop, cap-add", []string{"--cap-drop", "chown", "--cap-add", "NET_ADMIN", "busybox", "grep", "CapEff", "/proc/self/status"}, "CapEff:\t00000000a80435fa"},
		{"privileged", []string{"--privileged", "busybox", "sh", "-c", "grep CapEff /proc/self/status | cut -f2"}, capBnd(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			res := e.run(append([]string{"run", "--rm"}, tc.args...)...)
			if res.Code != 0 || strings.TrimSpace(res.Stdout) != tc.want {
				t.Errorf("run --rm %s:\n%s\nwant stdout %q", strings.Join(tc.args, " "), res, tc.want)
			}
		})
	}
}

// capBnd is this process's capability bounding set, as /proc shows it: all
// that a privileged container can get.
func capBnd(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return ""
}

// TestResources: --memory, --pids-limit and --cpus land in the container's
// cgroup.
func TestResources(t *testing.T) {
	e := newEnv(t)
	id := e.must("run", "-d", "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5", "busybox", "sleep", "1000")
	for _, tc := range []struct {
		controller, file, want string
	}{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"pids", "pids.max", "50"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
	} {
		m := cgroupMount(tc.controller)
		if m == "" {
			t.Logf("no v1 %s hierarchy here", tc.controller)
			continue
		}
		b, err := os.ReadFile(filepath.Join(m, "berth", id, tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if got := strings.TrimSpace(string(b)); got != tc.want {
			t.Errorf("%s = %s, want %s", tc.file, got, tc.want)
		}
	}
	if got := e.inspect(id, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"); got != strconv.Itoa(64<<20)+" 500000000 50" {
		t.Errorf("HostConfig Memory, NanoCpus, PidsLimit = %s", got)
	}
}

// TestOOMKill: a container that outgrows --memory is killed by the kernel,
// and the record says so.
func TestOOMKill(t *testing.T) {
	e := newEnv(t)
	// tail keeps the whole of one endless "line" in memory.
	res := e.run("run", "--name", "oom", "--memory", "8m", "--memory-swap", "8m", "busybox", "sh", "-c", "tail /dev/zero")
	if res.Code != 137 {
		t.Errorf("exit status %d, want 137\n%s", res.Code, res)
	}
	if got := e.inspect("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"); got != "true 137" {
		t.Errorf("OOMKilled, ExitCode = %s, want true 137", got)
	}
}

// TestInspect: the fields of Docker's inspect shape that scripts read.
func TestInspect(t *testing.T) {
	e := newEnv(t)
	vol := t.TempDir()
	id := e.must("run", "-d", "--name", "insp", "-l", "a=b", "-e", "X=1", "-v", vol+":/host:ro", "-v", "named:/data",
		"--restart", "on-failure:3", "--memory", "32m", "busybox", "sleep", "1000")
	var got []struct {
		ID    string `json:"Id"`
		Name  string
		Path  string
		Args  []string
		State struct {
			Status                string
			Running, Paused       bool
			OOMKilled             bool
			Pid, ExitCode         int
			StartedAt, FinishedAt time.Time
		}
		Config struct {
			Image  string
			Env    []string
			Cmd    []string
			Labels map[string]string
		}
		HostConfig struct {
			Memory        int64
			RestartPolicy struct {
				Name              string
				MaximumRetryCount int
			}
		}
		Mounts []struct {
			Type, Name, Source, Destination string
			RW                              bool
		}
	}
	if err := json.Unmarshal([]byte(e.must("inspect", "insp")), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect: %v (%d objects)", err, len(got))
	}
	c := got[0]
	if c.ID != id || c.Name != "/insp" || c.Path != "sleep" || strings.Join(c.Args, " ") != "1000" {
		t.Errorf("Id, Name, Path, Args = %s %s %s %v", c.ID, c.Name, c.Path, c.Args)
	}
	s := c.State
	if s.Status != "running" || !s.Running || s.Paused || s.OOMKilled || s.Pid <= 0 || s.ExitCode != 0 || s.StartedAt.IsZero() || !s.FinishedAt.IsZero() {
		t.Errorf("State of a running container: %+v", s)
	}
	if c.Config.Image != "busybox" || c.Config.Labels["a"] != "b" || !contains(c.Config.Env, "X=1") || strings.Join(c.Config.Cmd, " ") != "sleep 1000" {
		t.Errorf("Config: %+v", c.Config)
	}
	if c.HostConfig.Memory != 32<<20 || c.HostConfig.RestartPolicy.Name != "on-failure" || c.HostConfig.RestartPolicy.MaximumRetryCount != 3 {
		t.Errorf("HostConfig: %+v", c.HostConfig)
	}
	mounts := map[string]string{}
	for _, m := range c.Mounts {
		mounts[m.Destination] = m.Type + " " + m.Name + " " + strconv.FormatBool(m.RW)
		if m.Type == "bind" && m.Source != vol {
			t.Errorf("bind mount source %s, want %s", m.Source, vol)
		}
	}
	if mounts["/host"] != "bind  false" || mounts["/data"] != "volume named true" {
		t.Errorf("Mounts: %v", mounts)
	}

	e.must("stop", "-t", "0", "insp")
	after := e.inspect("insp", "{{.State.Status}} {{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}")
	if after != "exited false 0 137" {
		t.Errorf("State after stop: %s, want exited false 0 137", after)
	}
	fin, err := time.Parse(time.RFC3339Nano, e.inspect("insp", `{{.State.FinishedAt.Format "2006-01-02T15:04:05.999999999Z07:00"}}`))
	if err != nil || fin.Before(s.StartedAt) {
		t.Errorf("FinishedAt %v (%v) is not after StartedAt %v", fin, err, s.StartedAt)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestPs: columns, --format, -q, -l, -n, filters.
func TestPs(t *testing.T) {
	e := newEnv(t)
	if res := e.run("run", "--name", "first", "-l", "tier=db", "busybox", "sh", "-c", "exit 4"); res.Code != 4 {
		t.Fatalf("run exiting 4: %s", res)
	}
	e.must("run", "-d", "--name", "second", "-l", "tier=web", "busybox", "sleep", "1000")
	third := e.must("create", "--name", "third", "busybox", "true")

	header := strings.Fields(strings.SplitN(e.must("ps", "-a"), "\n", 2)[0])
	if strings.Join(header, " ") != "CONTAINER ID IMAGE COMMAND CREATED STATUS PORTS NAMES" {
		t.Errorf("ps header: %v", header)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ps", "--format", "{{.Names}}"}, "second"},
		{[]string{"ps", "-a", "--format", "{{.Names}}"}, "third second first"},
		{[]string{"ps", "-l", "--format", "{{.Names}}"}, "third"},
		{[]string{"ps", "-n", "2", "--format", "{{.Names}}"}, "third second"},
		{[]string{"ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}"}, "first"},
		{[]string{"ps", "-a", "--filter", "status=created", "--format", "{{.Names}}"}, "third"},
		{[]string{"ps", "-a", "--filter", "exited=4", "--format", "{{.Names}}"}, "first"},
		{[]string{"ps", "-a", "--filter", "label=tier=web", "--format", "{{.Names}}"}, "second"},
		{[]string{"ps", "-a", "--filter", "label=tier", "--format", "{{.Names}}"}, "second first"},
		{[]string{"ps", "-a", "--filter", "name=thi", "--format", "{{.Names}}"}, "third"},
		{[]string{"ps", "-a", "--format", "{{.Names}} {{.State}}", "--filter", "name=first"}, "first exited"},
		{[]string{"ps", "-q", "--no-trunc", "-l"}, third},
	} {
		if got := strings.Join(strings.Fields(e.must(tc.args...)), " "); got != tc.want {
			t.Errorf("%s: %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	if st := e.must("ps", "-a", "--filter", "name=first", "--format", "{{.Status}}"); !strings.HasPrefix(st, "Exited (4) ") {
		t.Errorf("STATUS of an exited container: %q", st)
	}
	if st := e.must("ps", "--format", "{{.Status}}"); !strings.HasPrefix(st, "Up ") {
		t.Errorf("STATUS of a running container: %q", st)
	}
	if q := e.must("ps", "-q"); len(q) != 12 {
		t.Errorf("ps -q: %q, want one short ID", q)
	}
}

// TestRenamePauseUnpause: rename keeps the container and frees the old
// name; pause freezes it and says so in State.Paused.
func TestRenamePauseUnpause(t *testing.T) {
	e := newEnv(t)
	id := e.must("run", "-d", "--name", "old", "busybox", "sleep", "1000")
	e.must("rename", "old", "new")
	if got := e.inspect("new", "{{.Id}}"); got != id {
		t.Errorf("the renamed container is %s, want %s", got, id)
	}
	if res := e.run("inspect", "old"); res.Code == 0 {
		t.Error("the old name still resolves")
	}
	e.must("create", "--name", "old", "busybox", "true") // the old name is free

	e.must("pause", "new")
	if got := e.inspect("new", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"); got != "paused true true" {
		t.Errorf("after pause: %s, want paused true true", got)
	}
	if st := e.must("ps", "--filter", "name=new", "--format", "{{.Status}}"); !strings.HasSuffix(st, "(Paused)") {
		t.Errorf("ps STATUS of a paused container: %q", st)
	}
	if res := e.run("pause", "new"); res.Code != 125 {
		t.Errorf("pause of a paused container: %s", res)
	}
	e.must("unpause", "new")
	if got := e.inspect("new", "{{.State.Status}} {{.State.Paused}}"); got != "running false" {
		t.Errorf("after unpause: %s, want running false", got)
	}
	e.must("stop", "-t", "0", "new")
}

// TestContainerPrune: prune removes the stopped containers and only them.
func TestContainerPrune(t *testing.T) {
	e := newEnv(t)
	// 100 KiB written in its layer: prune reports the space it frees.
	exited := e.must("run", "-d", "busybox", "dd", "if=/dev/zero", "of=/big", "bs=1024", "count=100")
	e.must("wait", exited)
	created := e.must("create", "busybox", "true")
	running := e.must("run", "-d", "busybox", "sleep", "1000")
	out := e.must("container", "prune", "-f")
	if !strings.Contains(out, "Total reclaimed space: 102kB") {
		t.Errorf("prune reclaimed, want 102kB:\n%s", out)
	}
	for _, id := range []string{exited, created} {
		if !strings.Contains(out, id) {
			t.Errorf("prune did not report %s:\n%s", id[:12], out)
		}
		if left := e.leftovers(id, 0); len(left) > 0 {
			t.Errorf("prune left of %s:\n%s", id[:12], strings.Join(left, "\n"))
		}
	}
	if got := e.must("ps", "-aq", "--no-trunc"); got != running {
		t.Errorf("after prune ps -a lists %q, want only the running container", got)
	}
}

// TestVolumes: a named volume is filled from the image on first use and
// kept across containers; volume create, ls, inspect, rm and prune.
func TestVolumes(t *testing.T) {
	e := newEnv(t)
	// First use: the volume takes the image's /etc.
	out := e.must("run", "--rm", "-v", "vol:/etc", "busybox", "sh", "-c", "cat /etc/passwd | head -1; echo kept > /etc/mine")
	if !strings.HasPrefix(out, "root:") {
		t.Errorf("the new volume at /etc does not hold the image's /etc/passwd: %q", out)
	}
	if got := e.must("run", "--rm", "-v", "vol:/data", "busybox", "cat", "/data/mine"); got != "kept" {
		t.Errorf("the volume did not keep a file across containers: %q", got)
	}
	if got := e.inspect("vol", "{{.Name}} {{.Driver}}"); got != "vol local" {
		t.Errorf("inspect vol: %q", got)
	}

	e.must("volume", "create", "--label", "k=v", "made")
	if got := strings.Fields(e.must("volume", "ls", "-q")); strings.Join(got, " ") != "made vol" {
		t.Errorf("volume ls -q: %v, want made vol", got)
	}
	var vols []struct {
		Name, Driver, Mountpoint string
		Labels                   map[string]string
	}
	if err := json.Unmarshal([]byte(e.must("volume", "inspect", "made")), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("volume inspect: %v", err)
	}
	if v := vols[0]; v.Name != "made" || v.Driver != "local" || v.Labels["k"] != "v" || v.Mountpoint == "" {
		t.Errorf("volume inspect: %+v", v)
	}

	// A volume in use is kept by rm and prune.
	id := e.must("run", "-d", "-v", "made:/m", "busybox", "sleep", "1000")
	if res := e.run("volume", "rm", "made"); res.Code != 125 || !strings.Contains(res.Stderr, "in use") {
		t.Errorf("volume rm of a volume in use: %s", res)
	}
	pruned := e.must("volume", "prune", "-f", "--all")
	if strings.Contains(pruned, "made") {
		t.Errorf("volume prune removed a volume in use:\n%s", pruned)
	}
	e.must("rm", "-f", id)
	e.must("volume", "rm", "made")
	if got := e.must("volume", "ls", "-q"); strings.Contains(got, "made") {
		t.Errorf("volume ls after rm: %q", got)
	}
	if res := e.run("volume", "rm", "nosuchvolume"); res.Code != 125 {
		t.Errorf("volume rm of a missing volume: %s", res)
	}
}

// TestSystemPrune: system prune removes what docker's does, stopped
// containers, networks without containers, with --volumes anonymous
// volumes no container uses, dangling images, and says how much space it
// freed; what is in use stays.
func TestSystemPrune(t *testing.T) {
	e := newEnv(t)
	stopped := e.must("run", "-d", "busybox", "dd", "if=/dev/zero", "of=/big", "bs=1024", "count=100")
	e.must("wait", stopped)
	running := e.must("run", "-d", "-v", "/inuse", "busybox", "sleep", "1000")
	anon := e.must("create", "-v", "/anon", "busybox", "true")
	anonVol := e.inspect(anon, "{{range .Mounts}}{{.Name}}{{end}}")
	e.must("rm", anon) // its anonymous volume stays without -v
	e.must("network", "create", "unused")
	out := e.must("system", "prune", "-f", "--volumes")
	for _, want := range []string{"Deleted Containers:\n" + stopped, "Deleted Networks:\nunused", "Deleted Volumes:\n" + anonVol, "Total reclaimed space: 102kB"} {
		if !strings.Contains(out, want) {
			t.Errorf("system prune output lacks %q:\n%s", want, out)
		}
	}
	if got := e.must("ps", "-aq", "--no-trunc"); got != running {
		t.Errorf("after system prune ps -a lists %q, want only the running container", got)
	}
	if got := e.must("network", "ls", "--format", "{{.Name}}"); strings.Contains(got, "unused") {
		t.Errorf("network unused is left after system prune:\n%s", got)
	}
	if got := e.must("volume", "ls", "-q"); strings.Contains(got, anonVol) || got == "" {
		t.Errorf("volumes after system prune --volumes: %q (want the running container's only)", got)
	}
}
