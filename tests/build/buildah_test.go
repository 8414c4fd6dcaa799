package build

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// differentialDockerfiles cover the instructions; each is built by berth
// and by buildah from the same context and busybox base.
var differentialDockerfiles = map[string]string{
	"metadata": `FROM busybox
ENV A=1 B="two words"
LABEL l1=v1 "l 2"="v 2"
EXPOSE 80 53/udp
VOLUME ["/data", "/logs"]
USER nobody
WORKDIR /srv/app
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q -O- http://localhost/ || exit 1
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
`,
	"files": `FROM busybox
WORKDIR /app
COPY package.json server.js ./
COPY --chown=65534:65534 dir /opt/dir
COPY --chmod=0600 server.js /opt/secret.js
ADD archive.tar /opt/unpacked/
RUN mkdir -p /app/node_modules && echo installed > /app/node_modules/.installed && chmod 0750 /app/node_modules
RUN ln -s /app/server.js /app/link.js && rm -f /bin/ping
`,
	"multistage": `FROM busybox AS build
RUN mkdir /out && echo artifact > /out/a && chmod 0755 /out/a
FROM busybox
COPY --from=build /out/a /usr/local/bin/a
ARG V=1
RUN echo "v=$V" > /version
CMD ["/usr/local/bin/a"]
`,
}

// TestBuildahDifferential: berth's and buildah's images of the same
// Dockerfiles have the same config fields and the same files, modes and
// owners.
func TestBuildahDifferential(t *testing.T) {
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Skip("buildah is not installed (hack/deps.sh installs it)")
	}
	e := newEnv(t)
	p := testutil.NewPodman(t, "runc")
	p.MustRun("import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--change", `CMD ["sh"]`, testutil.Images(t).Busybox, "busybox")
	tarDir := e.context(map[string]string{"inside/t.txt": "from a tar\n"})
	for name, df := range differentialDockerfiles {
		t.Run(name, func(t *testing.T) {
			e.t = t
			dir := e.context(map[string]string{
				"Dockerfile":   df,
				"package.json": `{"name":"app"}`,
				"server.js":    "console.log('hi')\n",
				"dir/sub/f":    "f\n",
			})
			writeTar(t, tarDir, filepath.Join(dir, "archive.tar"))
			e.build("-t", "diff:"+name, dir)
			bargs := []string{"--root", p.Root, "--runroot", p.RunRoot, "--storage-driver", "overlay",
				"build", "--pull=never", "--format", "docker", "-q", "-t", "diff:" + name, dir}
			cmd := exec.Command("buildah", bargs...)
			cmd.Env = p.Env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("buildah build: %v\n%s", err, out)
			}

			berthCfg := normConfig(t, e.MustRun("image", "inspect", "--format", "{{json .Config}}", "diff:"+name).Stdout)
			peerCfg := normConfig(t, p.MustRun("image", "inspect", "--format", "{{json .Config}}", "localhost/diff:"+name).Stdout)
			for _, k := range []string{"Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal"} {
				if berthCfg[k] != peerCfg[k] {
					t.Errorf("%s: berth %s, buildah %s", k, berthCfg[k], peerCfg[k])
				}
			}

			// Podman shows a docker-format image's HEALTHCHECK beside its
			// Config, not in it.
			berthHC := inspectField(t, e.MustRun("image", "inspect", "diff:"+name).Stdout, "Config", "Healthcheck")
			peerHC := inspectField(t, p.MustRun("image", "inspect", "localhost/diff:"+name).Stdout, "Healthcheck")
			if berthHC != peerHC {
				t.Errorf("Healthcheck: berth %s, buildah %s", berthHC, peerHC)
			}

			// Files: both images exported through a container.
			e.MustRun("create", "--name", "x-"+name, "diff:"+name)
			berthTar := filepath.Join(t.TempDir(), "berth.tar")
			e.MustRun("export", "-o", berthTar, "x-"+name)
			p.MustRun("create", "--name", "x-"+name, "localhost/diff:"+name)
			peerTar := filepath.Join(t.TempDir(), "peer.tar")
			p.MustRun("export", "-o", peerTar, "x-"+name)
			b, pe := listTar(t, berthTar), listTar(t, peerTar)
			if len(b) < 100 || len(pe) < 100 {
				t.Fatalf("exports too small to compare: berth %d entries, buildah %d", len(b), len(pe))
			}
			for path, want := range pe {
				if got, ok := b[path]; !ok {
					t.Errorf("%s: in buildah's image only: %s", path, want)
				} else if got != want {
					t.Errorf("%s: berth %s, buildah %s", path, got, want)
				}
			}
			for path, got := range b {
				if _, ok := pe[path]; !ok {
					t.Errorf("%s: in berth's image only: %s", path, got)
				}
			}
		})
	}
}

// normConfig reads an inspect .Config as field → canonical JSON, without
// the label buildah adds and with empty values dropped.
func normConfig(t *testing.T, s string) map[string]string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("config %q: %v", s, err)
	}
	if l, ok := m["Labels"].(map[string]any); ok {
		delete(l, "io.buildah.version")
		if len(l) == 0 {
			delete(m, "Labels")
		}
	}
	out := map[string]string{}
	for k, v := range m {
		b, _ := json.Marshal(v)
		if string(b) == "null" || string(b) == `""` || string(b) == "[]" || string(b) == "{}" {
			continue
		}
		out[k] = string(b)
	}
	return out
}

// listTar describes each entry of a container export: type, mode, owner,
// link target and content digest. The files every engine makes for a
// container (/etc/hosts, resolv.conf, hostname, mount points' contents)
// are left out.
func listTar(t *testing.T, p string) map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.Trim(strings.TrimPrefix(h.Name, "./"), "/")
		switch {
		case name == "/", name == "/etc/hosts", name == "/etc/resolv.conf", name == "/etc/hostname",
			strings.HasPrefix(name, "/proc/"), strings.HasPrefix(name, "/sys/"), strings.HasPrefix(name, "/dev/"),
			strings.HasPrefix(name, "/run/"), name == "/run", name == "/.containerenv":
			continue
		}
		desc := fmt.Sprintf("type=%c mode=%o owner=%d:%d", h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid)
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			desc += " -> " + h.Linkname
		}
		if h.Typeflag == tar.TypeReg {
			d := sha256.New()
			io.Copy(d, tr)
			desc += fmt.Sprintf(" sha256=%x", d.Sum(nil)[:8])
		}
		out[name] = desc
	}
	return out
}

// inspectField returns, as canonical JSON, the field at path of the one
// object an `image inspect` printed ("null" when it is absent).
func inspectField(t *testing.T, out string, path ...string) string {
	t.Helper()
	var objs []map[string]any
	if err := json.Unmarshal([]byte(out), &objs); err != nil || len(objs) != 1 {
		t.Fatalf("image inspect: %v\n%s", err, out)
	}
	var v any = objs[0]
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			v = nil
			break
		}
		v = m[k]
	}
	b, _ := json.Marshal(v)
	return string(b)
}
