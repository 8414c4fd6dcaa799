package rows

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/bench/harness"
	"github.com/berth-dev/berth/internal/testutil"
)

// The build rows: the seed's Dockerfile on a busybox base (npm replaced
// by a shell step, as the base has no Node.js), built cold, fully cached
// and after a change to server.js, against Docker's BuildKit (a dockerd of
// the bench's own, see build_dockerd.go) and buildah (--layers, its cache).

const seedDockerfile = `FROM busybox
WORKDIR /app
COPY package*.json ./
RUN mkdir -p node_modules && echo "installed $(cat package.json | wc -c) bytes of package.json" > node_modules/.installed
COPY . .
EXPOSE 3000
CMD ["node", "server.js"]
`

// writeSeedContext writes the example's context into dir/ctx.
func writeSeedContext(dir, serverJS string) (string, error) {
	ctx := filepath.Join(dir, "ctx")
	files := map[string]string{
		"Dockerfile":   seedDockerfile,
		"package.json": `{"name":"myapp","version":"1.0.0","main":"server.js"}` + "\n",
		"server.js":    serverJS,
	}
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		return "", err
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(ctx, n), []byte(b), 0o644); err != nil {
			return "", err
		}
	}
	return ctx, nil
}

const serverV1 = "require('http').createServer((q, s) => s.end('v1')).listen(3000)\n"
const serverV2 = "require('http').createServer((q, s) => s.end('v2')).listen(3000)\n"

// buildCase is what a run starts from: nothing built, the same context
// built, or the context built and then server.js changed.
type buildCase int

const (
	buildCold buildCase = iota
	buildCached
	buildChanged
)

func buildRowCold(env Env) (harness.Row, error)    { return buildRow(env, buildCold) }
func buildRowCached(env Env) (harness.Row, error)  { return buildRow(env, buildCached) }
func buildRowChanged(env Env) (harness.Row, error) { return buildRow(env, buildChanged) }

func buildRow(env Env, c buildCase) (harness.Row, error) {
	bb, err := busyboxInputs(env)
	if err != nil {
		return harness.Row{}, err
	}
	name := map[buildCase]string{
		buildCold: "build seed Dockerfile, cold", buildCached: "build seed Dockerfile, cached",
		buildChanged: "build seed Dockerfile, server.js changed",
	}[c]
	// prepare makes the context and, past the cold case, builds it once
	// and changes server.js if asked, with build (untimed).
	prepare := func(dir string, build func(ctx string) error) (string, error) {
		ctx, err := writeSeedContext(dir, serverV1)
		if err != nil {
			return "", err
		}
		if c == buildCold {
			return ctx, nil
		}
		if err := build(ctx); err != nil {
			return "", err
		}
		if c == buildChanged {
			if err := os.WriteFile(filepath.Join(ctx, "server.js"), []byte(serverV2), 0o644); err != nil {
				return "", err
			}
		}
		return ctx, nil
	}
	berth := harness.Side{
		Name: "berth build",
		Skip: env.BerthSkip,
		Setup: func(cx context.Context, dir string) (harness.Timed, error) {
			b := berthStore{bin: env.Berth, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
			if err := b.exec("import", "-c", `CMD ["sh"]`, bb.tar, "busybox")(cx); err != nil {
				return nil, err
			}
			ctx, err := prepare(dir, func(ctx string) error { return b.exec("build", "-q", "-t", "myapp:v1", ctx)(cx) })
			if err != nil {
				return nil, err
			}
			return b.exec("build", "-q", "-t", "myapp:v1", ctx), nil
		},
		Teardown: stopBerth(env.Berth),
	}
	buildah := harness.Side{
		Name: "buildah build --layers",
		Setup: func(cx context.Context, dir string) (harness.Timed, error) {
			p, err := testutil.SetupPodman(dir, "runc")
			if err != nil {
				return nil, err
			}
			if out, err := p.Command(cx, "import", "--change", `CMD ["sh"]`, bb.tar, "busybox").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("podman import: %w\n%s", err, out)
			}
			args := func(ctx string) []string {
				return []string{"--root", p.Root, "--runroot", p.RunRoot, "--storage-driver", "overlay",
					"build", "--layers", "--pull=never", "-q", "-t", "myapp:v1", ctx}
			}
			ctx, err := prepare(dir, func(ctx string) error { return harness.Exec(p.Env, "buildah", args(ctx)...)(cx) })
			if err != nil {
				return nil, err
			}
			return harness.Exec(p.Env, "buildah", args(ctx)...), nil
		},
	}
	if _, err := os.Stat("/usr/bin/buildah"); err != nil {
		buildah.Skip = "buildah is not installed (apt-get install buildah)"
	}
	buildkit := harness.Side{
		Name: "docker build (BuildKit)",
		Setup: func(cx context.Context, dir string) (harness.Timed, error) {
			d, err := startDockerd(env, bb)
			if err != nil {
				return nil, err
			}
			// Every run starts with no build cache and no image of the
			// app: BuildKit keeps only the busybox image loaded.
			if err := d.reset(cx); err != nil {
				return nil, err
			}
			ctx, err := prepare(dir, func(ctx string) error { return d.exec("build", "-q", "-t", "myapp:v1", ctx)(cx) })
			if err != nil {
				return nil, err
			}
			return d.exec("build", "-q", "-t", "myapp:v1", ctx), nil
		},
	}
	return harness.Row{
		Name:  name,
		Note:  "the seed's Dockerfile on busybox (RUN npm install replaced by a shell step); each run in a fresh store with busybox imported (untimed), BuildKit's with its build cache pruned and the app's image removed; cached and changed runs build the context once first (untimed)",
		Berth: berth, Peers: []harness.Side{buildkit, buildah},
	}, nil
}
