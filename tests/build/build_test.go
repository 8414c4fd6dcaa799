// Package build tests `berth build` end to end, as a Docker user types it:
// the berth binary against a private data root per test, on the real
// kernel, as root, from the busybox test image (nothing can be pulled).
package build

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

type env struct {
	*testutil.Berth
	t *testing.T
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("builds need root")
	}
	e := &env{Berth: testutil.NewBerth(t), t: t}
	e.MustRun("import", "-c", `CMD ["sh"]`, "-c", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", testutil.Images(t).Busybox, "busybox")
	return e
}

// context writes files (name → content) into a fresh context directory.
func (e *env) context(files map[string]string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// build runs berth build with --progress=plain and fails unless it works.
func (e *env) build(args ...string) testutil.Result {
	e.t.Helper()
	return e.MustRun(append([]string{"build", "--progress=plain"}, args...)...)
}

// sh runs a shell command in a container of img and returns its output.
func (e *env) sh(img, script string) string {
	e.t.Helper()
	return strings.TrimSpace(e.MustRun("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", img, "-c", script).Stdout)
}

// config returns the image's config as inspect shows it.
func (e *env) config(img string) map[string]any {
	e.t.Helper()
	out := e.MustRun("image", "inspect", "--format", "{{json .Config}}", img).Stdout
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		e.t.Fatalf("inspect %s: %v: %s", img, err, out)
	}
	return m
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// steps returns, for each progress line `#N [..] TITLE`, the title and
// whether the step was CACHED.
func steps(progress string) map[string]bool {
	titles := map[string]string{}
	out := map[string]bool{}
	re := regexp.MustCompile(`(?m)^#(\d+) (\[.*\] .*)$`)
	for _, m := range re.FindAllStringSubmatch(progress, -1) {
		titles[m[1]] = m[2]
		out[m[2]] = false
	}
	for _, m := range regexp.MustCompile(`(?m)^#(\d+) CACHED$`).FindAllStringSubmatch(progress, -1) {
		out[titles[m[1]]] = true
	}
	return out
}

// TestInstructions: each instruction's effect on the config and files.
func TestInstructions(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{
		"Dockerfile": `# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE}
ARG GREETING=hello
ENV APP_HOME=/srv/app GREETING=${GREETING}
LABEL org.example.name="demo app" version=1
WORKDIR $APP_HOME
COPY a.txt ./
COPY --chown=65534:65534 --chmod=0640 b.txt /opt/b.txt
COPY dir/ /opt/dir/
ADD archive.tar /opt/unpacked/
RUN echo "$GREETING from $(pwd)" > made.txt && \
    mkdir -p /data
RUN ["/bin/sh", "-c", "echo exec form > /opt/exec.txt"]
SHELL ["/bin/sh", "-e", "-c"]
RUN <<EOF
echo line1 > /opt/heredoc.txt
echo line2 >> /opt/heredoc.txt
EOF
COPY <<EOF /opt/inline.txt
inline content
EOF
USER nobody
RUN id -u > /tmp/uid
EXPOSE 3000 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q -O- localhost:3000 || exit 1
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat made.txt"]
`,
		"a.txt":       "a\n",
		"b.txt":       "b\n",
		"dir/x/y.txt": "y\n",
	})
	// A tar for ADD to unpack.
	tarDir := e.context(map[string]string{"inside/t.txt": "from a tar\n"})
	writeTar(t, tarDir, filepath.Join(dir, "archive.tar"))

	e.build("-t", "inst:v1", "--build-arg", "GREETING=hi", dir)
	cfg := e.config("inst:v1")
	want := map[string]string{
		"Env":          `["PATH=/usr/sbin:/usr/bin:/sbin:/bin","APP_HOME=/srv/app","GREETING=hi"]`,
		"Labels":       `{"org.example.name":"demo app","version":"1"}`,
		"WorkingDir":   `"/srv/app"`,
		"User":         `"nobody"`,
		"ExposedPorts": `{"3000/tcp":{},"53/udp":{}}`,
		"Volumes":      `{"/data":{}}`,
		"StopSignal":   `"SIGINT"`,
		"Entrypoint":   `["/bin/sh","-c"]`,
		"Cmd":          `["cat made.txt"]`,
		"Shell":        `["/bin/sh","-e","-c"]`,
		"OnBuild":      `["RUN echo triggered \u003e /tmp/onbuild"]`,
		"Healthcheck":  `{"Interval":5000000000,"Retries":4,"Test":["CMD-SHELL","wget -q -O- localhost:3000 || exit 1"],"Timeout":2000000000}`,
	}
	for k, w := range want {
		if got := jsonOf(cfg[k]); got != w {
			t.Errorf("config %s = %s, want %s", k, got, w)
		}
	}
	files := e.sh("inst:v1", `cd /; for f in srv/app/a.txt opt/b.txt opt/dir/x/y.txt opt/unpacked/inside/t.txt srv/app/made.txt opt/exec.txt opt/heredoc.txt opt/inline.txt tmp/uid; do stat -c "%n %a %u:%g" $f; cat $f; done`)
	for _, w := range []string{
		"srv/app/a.txt 644 0:0\na",
		"opt/b.txt 640 65534:65534\nb",
		"opt/dir/x/y.txt 644 0:0\ny",
		"opt/unpacked/inside/t.txt 644 0:0\nfrom a tar",
		"srv/app/made.txt 644 0:0\nhi from /srv/app",
		"opt/exec.txt 644 0:0\nexec form",
		"opt/heredoc.txt 644 0:0\nline1\nline2",
		"opt/inline.txt 644 0:0\ninline content",
		"tmp/uid 644 65534:65534\n65534",
	} {
		if !strings.Contains(files, w) {
			t.Errorf("files: want %q in\n%s", w, files)
		}
	}
	// ONBUILD runs in a child build.
	child := e.context(map[string]string{"Dockerfile": "FROM inst:v1\nUSER root\n"})
	e.build("-t", "child", child)
	if got := e.sh("child", "cat /tmp/onbuild"); got != "triggered" {
		t.Errorf("ONBUILD trigger: /tmp/onbuild = %q", got)
	}
	if c := e.config("child"); c["OnBuild"] != nil {
		t.Errorf("child keeps OnBuild %v", c["OnBuild"])
	}
}

// TestScratch: FROM scratch with COPY only.
func TestScratch(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\nCMD [\"/f\"]\n", "f": "x"})
	e.build("-t", "s", dir)
	out := e.MustRun("image", "inspect", "--format", "{{len .RootFS.Layers}} {{.Config.Cmd}}", "s").Stdout
	if strings.TrimSpace(out) != "1 [/f]" {
		t.Errorf("scratch image: %q", out)
	}
}

// TestCache: a second build is all cached and gives the same image;
// touching a file keeps the cache; changing server.js reruns only from
// the COPY that brings it.
func TestCache(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{
		"Dockerfile": `FROM busybox
WORKDIR /app
COPY package*.json ./
RUN echo installed > /app/installed && date +%s%N > /app/stamp
COPY . .
EXPOSE 3000
CMD ["cat", "server.js"]
`,
		"package.json": `{"name":"app"}`,
		"server.js":    "v1\n",
	})
	first := e.build("-t", "app:v1", "--iidfile", filepath.Join(dir, "..", "iid1"), dir)
	for title, cached := range steps(first.Stderr) {
		if cached {
			t.Errorf("first build: %s CACHED", title)
		}
	}
	second := e.build("-t", "app:v1", dir)
	st := steps(second.Stderr)
	for title, cached := range st {
		if !cached && !strings.Contains(title, "FROM") {
			t.Errorf("second build: %s not CACHED\n%s", title, second.Stderr)
		}
	}
	id1, _ := os.ReadFile(filepath.Join(dir, "..", "iid1"))
	id2 := strings.TrimSpace(e.MustRun("build", "-q", dir).Stdout)
	if string(id1) != id2 {
		t.Errorf("fully cached build gave %s, first %s", id2, id1)
	}
	stamp := e.sh("app:v1", "cat /app/stamp")

	// touch: same content, new mtime.
	if err := os.Chtimes(filepath.Join(dir, "server.js"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if id := strings.TrimSpace(e.MustRun("build", "-q", dir).Stdout); id != id2 {
		t.Errorf("after touch: %s, want the cached %s", id, id2)
	}

	// Change server.js: only COPY . . runs.
	os.WriteFile(filepath.Join(dir, "server.js"), []byte("v2\n"), 0o644)
	third := e.build("-t", "app:v2", dir)
	for title, cached := range steps(third.Stderr) {
		wantCached := !strings.Contains(title, "COPY . .") && !strings.Contains(title, "FROM")
		if strings.Contains(title, "FROM") {
			continue
		}
		if cached != wantCached {
			t.Errorf("after changing server.js: %s cached=%v, want %v", title, cached, wantCached)
		}
	}
	if got := e.sh("app:v2", "cat /app/stamp; cat /app/server.js"); got != stamp+"\nv2" {
		t.Errorf("app:v2: %q, want the cached RUN's stamp %s and v2", got, stamp)
	}

	// --no-cache runs everything.
	for title, cached := range steps(e.build("--no-cache", dir).Stderr) {
		if cached {
			t.Errorf("--no-cache: %s CACHED", title)
		}
	}
	// builder prune empties the cache.
	e.MustRun("builder", "prune", "-f")
	for title, cached := range steps(e.build(dir).Stderr) {
		if cached {
			t.Errorf("after prune: %s CACHED", title)
		}
	}
}

// TestMultiStage: COPY --from a stage by name and by number, --target,
// and stages the target does not need are skipped.
func TestMultiStage(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{"Dockerfile": `FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact && chown 65534 /out/artifact

FROM busybox AS broken
RUN exit 7

FROM busybox AS other
RUN echo other > /other

FROM scratch
COPY --from=builder /out/artifact /artifact
COPY --from=2 /other /other
COPY --from=busybox /bin/busybox /bin/busybox
`})
	res := e.build("-t", "multi", dir)
	if strings.Contains(res.Stderr, "exit 7") {
		t.Errorf("the broken stage ran:\n%s", res.Stderr)
	}
	out := e.MustRun("run", "--rm", "--network", "none", "multi", "/bin/busybox", "sh", "-c", "/bin/busybox cat /artifact /other; /bin/busybox stat -c %u /artifact").Stdout
	if out != "built\nother\n65534\n" {
		t.Errorf("multi: %q", out)
	}
	e.build("-t", "only", "--target", "other", dir)
	if got := e.sh("only", "cat /other"); got != "other" {
		t.Errorf("--target other: %q", got)
	}
	res = e.Run("build", "--target", "broken", dir)
	if res.Code != 1 || !strings.Contains(res.Stderr, "exit code: 7") {
		t.Errorf("--target broken: %s", res)
	}
}

// TestDockerignore: ignored files are not in the context, exceptions are.
func TestDockerignore(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{
		"Dockerfile":            "FROM busybox\nCOPY . /ctx\n",
		".dockerignore":         "*.log\nsecret/\n!keep.log\nnode_modules\n",
		"a.log":                 "no",
		"keep.log":              "yes",
		"secret/key":            "no",
		"node_modules/m/i.js":   "no",
		"src/app.js":            "yes",
		"Dockerfile.dockerfile": "",
	})
	e.build("-t", "ign", dir)
	got := e.sh("ign", "cd /ctx && find . -type f | sort")
	for _, w := range []string{"./keep.log", "./src/app.js"} {
		if !strings.Contains(got, w) {
			t.Errorf("want %s in the context:\n%s", w, got)
		}
	}
	for _, n := range []string{"a.log", "secret", "node_modules"} {
		if strings.Contains(got, n) {
			t.Errorf("%s should be ignored:\n%s", n, got)
		}
	}
	// COPY of an ignored file fails as a missing one does.
	dir2 := e.context(map[string]string{"Dockerfile": "FROM busybox\nCOPY a.log /\n", ".dockerignore": "*.log\n", "a.log": "x"})
	if res := e.Run("build", dir2); res.Code != 1 || !strings.Contains(res.Stderr, "a.log") {
		t.Errorf("COPY of an ignored file: %s", res)
	}
}

// TestBuildArgs: --build-arg overrides defaults, global ARGs reach FROM,
// and an ARG change reruns the steps that use it.
func TestBuildArgs(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{"Dockerfile": `ARG IMG=busybox
FROM $IMG
ARG WHO=world
ARG UNSET
RUN echo "hello $WHO [$UNSET]" > /greeting
`})
	e.build("-t", "a1", dir)
	if got := e.sh("a1", "cat /greeting"); got != "hello world []" {
		t.Errorf("default: %q", got)
	}
	e.build("-t", "a2", "--build-arg", "WHO=berth", "--build-arg", "UNSET=set", dir)
	if got := e.sh("a2", "cat /greeting"); got != "hello berth [set]" {
		t.Errorf("--build-arg: %q", got)
	}
	// ARGs are not in the image's environment.
	if env := jsonOf(e.config("a2")["Env"]); strings.Contains(env, "WHO") {
		t.Errorf("ARG leaked into Env: %s", env)
	}
}

// TestRunMounts: cache mounts persist between builds, tmpfs and secrets
// are there during the step only, bind mounts read the context.
func TestRunMounts(t *testing.T) {
	e := newEnv(t)
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("s3cret"), 0o600)
	dir := e.context(map[string]string{
		"Dockerfile": `FROM busybox
ARG N=1
RUN --mount=type=cache,target=/cache echo $N >> /cache/runs && cat /cache/runs | wc -l > /runs
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs-seen
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /secret-seen
RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /bind-seen
RUN --network=none ip link 2>/dev/null | grep -c ': ' > /links || true
`,
		"data.txt": "from context",
	})
	e.build("-t", "m1", "--secret", "id=tok,src="+secret, dir)
	e.build("-t", "m2", "--secret", "id=tok,src="+secret, "--build-arg", "N=2", dir)
	got := e.sh("m2", "cat /runs /tmpfs-seen /secret-seen /bind-seen")
	if got != "2\nx\ns3cretfrom context" {
		t.Errorf("mounts: %q", got)
	}
	if out := e.sh("m2", "ls -d /scratch /mnt/data.txt /run/secrets/tok 2>/dev/null | wc -l"); out != "0" {
		t.Errorf("mount points left in the image: %s", out)
	}
}

// TestStdin: a Dockerfile on stdin (no context) and with -f -.
func TestStdin(t *testing.T) {
	e := newEnv(t)
	res := e.RunInput(strings.NewReader("FROM busybox\nRUN echo piped > /p\n"), "build", "-t", "p1", "-")
	if res.Code != 0 {
		t.Fatalf("build -: %s", res)
	}
	dir := e.context(map[string]string{"f": "file\n"})
	res = e.RunInput(strings.NewReader("FROM busybox\nCOPY f /f\n"), "build", "-t", "p2", "-f", "-", dir)
	if res.Code != 0 {
		t.Fatalf("build -f -: %s", res)
	}
	if got := e.sh("p1", "cat /p") + e.sh("p2", "cat /f"); got != "pipedfile" {
		t.Errorf("stdin builds: %q", got)
	}
}

// TestReproducible: with SOURCE_DATE_EPOCH, two builds without cache give
// the same image.
func TestReproducible(t *testing.T) {
	e := newEnv(t)
	dir := e.context(map[string]string{"Dockerfile": "FROM busybox\nCOPY f /f\nRUN echo x > /x\nENV A=b\n", "f": "f"})
	var ids []string
	for range 2 {
		ids = append(ids, strings.TrimSpace(e.MustRun("build", "-q", "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", dir).Stdout))
	}
	if ids[0] != ids[1] {
		t.Errorf("two builds with SOURCE_DATE_EPOCH: %v", ids)
	}
	created := e.MustRun("image", "inspect", "--format", "{{.Created}}", ids[0]).Stdout
	if !strings.HasPrefix(created, "2023-11-14T22:13:20") {
		t.Errorf("created %s, want the epoch", created)
	}
}

// TestBadInput: clear errors, exit status 1 as docker build's, and no
// image tagged.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, dockerfile string
		files            map[string]string
		args             []string
		want             []string
	}{
		{"syntax error", "FROM busybox\nRUN echo ok\nCOPY\n", nil, nil, []string{"Dockerfile:3", "COPY"}},
		{"unknown instruction", "FROM busybox\nFOO bar\n", nil, nil, []string{"Dockerfile:2", "unknown instruction: FOO"}},
		{"missing COPY source", "FROM busybox\nCOPY nothere.txt /\n", nil, nil, []string{"Dockerfile:2", "nothere.txt", "not found"}},
		{"failing RUN", "FROM busybox\nRUN echo first line; echo last words; exit 3\n", nil, nil,
			[]string{"Dockerfile:2", "exit code: 3", "last words"}},
		{"unknown stage", "FROM busybox AS a\nRUN true\n", nil, []string{"--target", "nosuch"}, []string{`target stage "nosuch" could not be found`}},
		{"unknown --from", "FROM busybox\nCOPY --from=nosuch /x /x\n", nil, nil, []string{"nosuch"}},
		{"unknown base", "FROM nosuchimage\n", nil, nil, []string{"nosuchimage"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			files := map[string]string{"Dockerfile": tc.dockerfile}
			dir := e.context(files)
			before := e.MustRun("images", "-a", "-q", "--no-trunc").Stdout
			res := e.Run(append(append([]string{"build", "-t", "bad:v1"}, tc.args...), dir)...)
			if res.Code != 1 {
				t.Errorf("exit status %d, want 1\n%s", res.Code, res)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.Stderr)
				}
			}
			if r := e.Run("image", "inspect", "bad:v1"); r.Code == 0 {
				t.Errorf("bad:v1 was tagged")
			}
			after := e.MustRun("images", "-a", "-q", "--no-trunc").Stdout
			if !slices.Equal(strings.Fields(before), strings.Fields(after)) {
				t.Errorf("images changed: %q -> %q", before, after)
			}
		})
	}
}

// writeTar tars the contents of dir into the file out.
func writeTar(t *testing.T, dir, out string) {
	t.Helper()
	if b, err := exec.Command("tar", "-cf", out, "-C", dir, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
}
