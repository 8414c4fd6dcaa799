package build

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
)

// defaultPath is the PATH a RUN step gets when the image sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// proxyArgs are predefined: usable without an ARG, and kept out of the
// image and of the cache key.
var proxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// state is a stage's image as it is being built.
type state struct {
	cfg    *image.Config
	layers []Layer
	// key is the cache key of the last step.
	key digest.Digest
	// args are the ARGs in scope in the stage and their values.
	args map[string]string
	// clock is the time of the last step that ran (or of the base
	// image): what the history records for steps that make no layer, so
	// that a build served from the cache records the same times.
	clock time.Time
	// cmdSet says CMD was set in this stage (ENTRYPOINT resets an
	// inherited one only).
	cmdSet bool
}

// stageRun is one stage being built.
type stageRun struct {
	idx   int
	done  chan struct{}
	state *state
	err   error
	// steps counts the stage's steps with a progress line.
	steps int
}

// builder is one build.
type builder struct {
	b      Backend
	opts   Options
	df     *dockerfile
	meta   map[string]string // the global ARGs' values
	ignore *patternmatcher.PatternMatcher
	prog   *progress
	runs   []*stageRun

	mu            sync.Mutex
	steps, cached int
	pulled        map[string]*pullOnce
}

// Build builds the image opts describe with b.
func Build(ctx context.Context, b Backend, opts Options) (*Result, error) {
	df, err := parseDockerfile(opts.DockerfileName, opts.Dockerfile)
	if err != nil {
		return nil, err
	}
	if opts.Cache == nil {
		return nil, errdefs.InvalidArgument("build: no cache")
	}
	bd := &builder{b: b, opts: opts, df: df, prog: newProgress(opts.Progress, opts.TTY)}
	defer bd.prog.close()
	if len(opts.Ignore) > 0 {
		if bd.ignore, err = patternmatcher.New(opts.Ignore); err != nil {
			return nil, errdefs.InvalidArgument("invalid .dockerignore: %v", err)
		}
	}
	if err := bd.globalArgs(); err != nil {
		return nil, err
	}
	target := len(df.stages) - 1
	if opts.Target != "" {
		i, ok := instructions.HasStage(df.stages, opts.Target)
		if !ok {
			return nil, errdefs.InvalidArgument("target stage %q could not be found", opts.Target)
		}
		target = i
	}
	needed, err := bd.neededStages(target)
	if err != nil {
		return nil, err
	}
	bd.runs = make([]*stageRun, len(df.stages))
	for i := range df.stages {
		bd.runs[i] = &stageRun{idx: i, done: make(chan struct{})}
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range df.stages {
		if !needed[i] {
			continue
		}
		r := bd.runs[i]
		g.Go(func() error {
			defer close(r.done)
			r.err = bd.runStage(gctx, r)
			return r.err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	st := bd.runs[target].state
	cfg := cloneConfig(st.cfg)
	for k, v := range opts.Labels {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = map[string]string{}
		}
		cfg.Config.Labels[k] = v
	}
	created := st.clock
	if opts.Epoch != nil {
		created = *opts.Epoch
	}
	created = created.UTC()
	cfg.Created = &created
	out := opts.Output
	if out.Type == "" {
		out.Type = "image"
	}
	id, err := bd.export(ctx, cfg, st.layers, out)
	if err != nil {
		return nil, err
	}
	return &Result{ID: id, Steps: bd.steps, Cached: bd.cached}, nil
}

// image resolves a base image (FROM, COPY --from, RUN --mount=from),
// asking its registry first when the build pulls — once per name.
func (bd *builder) image(ctx context.Context, name string) (*Image, error) {
	if bd.opts.Pull {
		bd.mu.Lock()
		if bd.pulled == nil {
			bd.pulled = map[string]*pullOnce{}
		}
		p := bd.pulled[name]
		if p == nil {
			p = &pullOnce{}
			bd.pulled[name] = p
		}
		bd.mu.Unlock()
		p.once.Do(func() {
			v := bd.prog.vertex("[internal] load metadata for " + name)
			if p.err = bd.b.Pull(ctx, name); p.err != nil {
				p.err = fmt.Errorf("failed to resolve source metadata for %s: %w", name, p.err)
				v.fail(p.err)
				return
			}
			v.done()
		})
		if p.err != nil {
			return nil, p.err
		}
	}
	return bd.b.Image(ctx, name)
}

type pullOnce struct {
	once sync.Once
	err  error
}

// CheckPlatform accepts only this machine's platform (linux/GOARCH, with
// an optional variant): berth runs RUN steps natively, without
// emulation, and pulls nothing, so it cannot build for another.
func CheckPlatform(p string) error {
	if p == "" {
		return nil
	}
	parts := strings.Split(strings.ToLower(p), "/")
	arch := runtime.GOARCH
	if len(parts) > 1 {
		arch = map[string]string{"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}[parts[1]]
		if arch == "" {
			arch = parts[1]
		}
	}
	if parts[0] != "linux" || arch != runtime.GOARCH || len(parts) > 3 {
		return errdefs.NotImplemented("platform %s: berth builds for this machine's platform only, linux/%s (no emulation)", p, runtime.GOARCH)
	}
	return nil
}

// globalArgs reads the ARGs before the first FROM, with --build-arg's.
func (bd *builder) globalArgs() error {
	bd.meta = map[string]string{
		"TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "TARGETPLATFORM": "linux/" + runtime.GOARCH, "TARGETVARIANT": "",
		"BUILDOS": "linux", "BUILDARCH": runtime.GOARCH, "BUILDPLATFORM": "linux/" + runtime.GOARCH, "BUILDVARIANT": "",
	}
	for _, a := range bd.df.metaArgs {
		for _, kv := range a.Args {
			v, ok := bd.opts.BuildArgs[kv.Key]
			if !ok && kv.Value != nil {
				var err error
				if v, err = expander(bd.df.escape, envOf(bd.meta))(*kv.Value); err != nil {
					return errdefs.InvalidArgument("%s:%d: %v", bd.df.name, lineOf(&a), err)
				}
				ok = true
			}
			if ok {
				bd.meta[kv.Key] = v
			} else {
				delete(bd.meta, kv.Key)
			}
		}
	}
	return nil
}

// baseName expands a stage's FROM with the global ARGs.
func (bd *builder) baseName(i int) (string, error) {
	s := bd.df.stages[i]
	name, err := expander(bd.df.escape, envOf(bd.meta))(s.BaseName)
	if err != nil || name == "" {
		return "", errdefs.InvalidArgument("%s:%d: invalid FROM %q", bd.df.name, stageLine(s), s.BaseName)
	}
	return name, nil
}

func stageLine(s instructions.Stage) int {
	if len(s.Location) > 0 {
		return s.Location[0].Start.Line
	}
	return 0
}

// deps lists the earlier stages stage i starts from, copies from or
// mounts from.
func (bd *builder) deps(i int) ([]int, error) {
	var out []int
	add := func(name string) {
		if j, ok := bd.df.stageIndex(name, i); ok && !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	base, err := bd.baseName(i)
	if err != nil {
		return nil, err
	}
	add(base)
	for _, c := range bd.df.stages[i].Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				from, _ := expander(bd.df.escape, envOf(bd.meta))(c.From)
				add(from)
			}
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				if m.From != "" {
					add(m.From)
				}
			}
		}
	}
	return out, nil
}

// neededStages marks the target and every stage it depends on.
func (bd *builder) neededStages(target int) (map[int]bool, error) {
	needed := map[int]bool{}
	var visit func(i int) error
	visit = func(i int) error {
		if needed[i] {
			return nil
		}
		needed[i] = true
		ds, err := bd.deps(i)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := visit(d); err != nil {
				return err
			}
		}
		return nil
	}
	return needed, visit(target)
}

// waitStage waits for stage i to be built and returns its state.
func (bd *builder) waitStage(ctx context.Context, i int) (*state, error) {
	r := bd.runs[i]
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil || r.state == nil {
		return nil, fmt.Errorf("stage %s failed", bd.df.describe(i))
	}
	return r.state, nil
}

// countSteps counts the steps of a stage shown with [i/n].
func countSteps(cmds []instructions.Command) int {
	n := 1 // FROM
	for _, c := range cmds {
		switch c.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			n++
		}
	}
	return n
}

// runStage builds one stage.
func (bd *builder) runStage(ctx context.Context, r *stageRun) error {
	s := bd.df.stages[r.idx]
	base, err := bd.baseName(r.idx)
	if err != nil {
		return err
	}
	prefix := ""
	if len(bd.df.stages) > 1 {
		prefix = bd.df.describe(r.idx) + " "
	}
	if s.Platform != "" {
		p, err := expander(bd.df.escape, envOf(bd.meta))(s.Platform)
		if err != nil {
			return fmt.Errorf("%s:%d: FROM --platform=%s: %w", bd.df.name, stageLine(s), s.Platform, err)
		}
		if err := CheckPlatform(p); err != nil {
			return fmt.Errorf("%s:%d: FROM --platform=%s %s: %w", bd.df.name, stageLine(s), p, base, err)
		}
	}
	st := &state{args: map[string]string{}}
	cmds := slices.Clone(s.Commands)
	var v *vertex
	if j, ok := bd.df.stageIndex(base, r.idx); ok {
		from, err := bd.waitStage(ctx, j)
		if err != nil {
			return err
		}
		v = bd.prog.vertex(fmt.Sprintf("[%s1/%d] FROM %s", prefix, countSteps(cmds), bd.df.describe(j)))
		st.cfg, st.layers, st.key, st.clock = cloneConfig(from.cfg), slices.Clone(from.layers), from.key, from.clock
	} else if strings.EqualFold(base, "scratch") {
		v = bd.prog.vertex(fmt.Sprintf("[%s1/%d] FROM scratch", prefix, countSteps(cmds)))
		st.cfg = &image.Config{Architecture: runtime.GOARCH, OS: "linux"}
		st.key = digest.FromString("scratch")
		st.clock = time.Now().UTC()
	} else {
		img, err := bd.image(ctx, base)
		if err != nil {
			return fmt.Errorf("%s:%d: FROM %s: %w", bd.df.name, stageLine(s), base, err)
		}
		st.cfg, st.layers, st.key = cloneConfig(img.Config), slices.Clone(img.Layers), digest.FromString("image "+img.ID.String())
		if img.Config.Created != nil {
			st.clock = *img.Config.Created
		}
		// The base image's ONBUILD triggers run first.
		var triggers []instructions.Command
		for _, t := range img.Config.Config.OnBuild {
			c, err := parseTrigger(t)
			if err != nil {
				return fmt.Errorf("FROM %s: ONBUILD %s: %w", base, t, err)
			}
			triggers = append(triggers, c)
		}
		cmds = append(triggers, cmds...)
		st.cfg.Config.OnBuild = nil
		v = bd.prog.vertex(fmt.Sprintf("[%s1/%d] FROM %s", prefix, countSteps(cmds), base))
	}
	v.done()
	r.steps = countSteps(cmds)
	n := 1
	for _, c := range cmds {
		title := ""
		switch c.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			n++
			title = fmt.Sprintf("[%s%d/%d] %s", prefix, n, r.steps, sourceOf(c))
		}
		if err := bd.step(ctx, st, c, title); err != nil {
			if line := lineOf(c); line > 0 {
				return fmt.Errorf("%s:%d: %s: %w", bd.df.name, line, sourceOf(c), err)
			}
			return fmt.Errorf("%s: %w", sourceOf(c), err)
		}
	}
	r.state = st
	return nil
}

// sourceOf is an instruction as written.
func sourceOf(c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return strings.ToUpper(c.Name())
}

// parseTrigger parses an ONBUILD trigger as an instruction.
func parseTrigger(t string) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(t))
	if err != nil {
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, errdefs.InvalidArgument("invalid trigger")
	}
	return instructions.ParseCommand(res.AST.Children[0])
}

// env is what words are expanded with: the ARGs in scope, overridden by
// the ENVs.
func (st *state) env() []string {
	m := maps.Clone(st.args)
	for _, kv := range st.cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return envOf(m)
}

func envOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// cloneConfig deep-copies an image config (through JSON, which is what
// it is made of).
func cloneConfig(c *image.Config) *image.Config {
	b, err := json.Marshal(c)
	if err != nil {
		return &image.Config{}
	}
	var out image.Config
	if json.Unmarshal(b, &out) != nil {
		return &image.Config{}
	}
	return &out
}

// addHistory records a step in the image's history.
func (bd *builder) addHistory(st *state, createdBy string, empty bool) {
	t := st.clock.UTC()
	if bd.opts.Epoch != nil {
		t = bd.opts.Epoch.UTC()
	}
	st.cfg.History = append(st.cfg.History, image.History{Created: &t, CreatedBy: createdBy, EmptyLayer: empty})
}

// advance moves the stage's cache key past a step.
func (st *state) advance(parts ...string) {
	st.key = digest.FromString(st.key.String() + "\n" + strings.Join(parts, "\x00"))
}

// setEnv sets k=v in an environment list.
func setEnv(env []string, k, v string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		ek, _, _ := strings.Cut(kv, "=")
		return ek == k
	})
	return append(out, k+"="+v)
}

// workdir resolves p against the current working directory.
func (st *state) workdir(p string) string {
	if !path.IsAbs(p) {
		wd := st.cfg.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		p = path.Join(wd, p)
	}
	return path.Clean(p)
}

// shellOf is the shell the stage's shell-form commands use.
func (st *state) shellOf() []string {
	if len(st.cfg.Config.Shell) > 0 {
		return slices.Clone(st.cfg.Config.Shell)
	}
	return []string{"/bin/sh", "-c"}
}

// epoch returns the epoch for layers, if any.
func (bd *builder) epoch() *time.Time { return bd.opts.Epoch }

func (bd *builder) count(cached bool) {
	bd.mu.Lock()
	defer bd.mu.Unlock()
	bd.steps++
	if cached {
		bd.cached++
	}
}

// heredocScript is the shell script a RUN with heredocs runs: the
// heredoc itself when it is the whole command, or else the command line
// with the heredocs appended for the shell to read.
func heredocScript(c *instructions.RunCommand) (string, bool) {
	if len(c.Files) == 0 || !c.PrependShell {
		return "", false
	}
	if len(c.CmdLine) == 1 && len(c.Files) == 1 && strings.HasPrefix(c.CmdLine[0], "<<") {
		data := c.Files[0].Data
		if c.Files[0].Chomp {
			data = parser.ChompHeredocContent(data)
		}
		return data, true
	}
	// Otherwise the shell reads the heredocs itself: append them to the
	// command line as a shell script would have them.
	var sb strings.Builder
	sb.WriteString(strings.Join(c.CmdLine, " "))
	sb.WriteString("\n")
	for _, f := range c.Files {
		data := f.Data
		if f.Chomp {
			data = parser.ChompHeredocContent(data)
		}
		sb.WriteString(data)
		if !strings.HasSuffix(data, "\n") {
			sb.WriteString("\n")
		}
		sb.WriteString(f.Name + "\n")
	}
	return sb.String(), true
}
