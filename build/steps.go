package build

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/build/cache"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
)

// RunError is a RUN step whose process failed.
type RunError struct {
	Cmd  []string
	Code int
	// Tail is the last lines of its output.
	Tail []string
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("process %q did not complete successfully: exit code: %d", strings.Join(e.Cmd, " "), e.Code)
	if len(e.Tail) > 0 {
		msg += "\n" + strings.Join(e.Tail, "\n")
	}
	return msg
}

// step runs one instruction on st. title is its progress line, empty for
// the instructions that only change the configuration.
func (bd *builder) step(ctx context.Context, st *state, cmd instructions.Command, title string) error {
	expand := expander(bd.df.escape, st.env())
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(expand); err != nil {
			return err
		}
	}
	cc := &st.cfg.Config
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		var parts []string
		for _, kv := range c.Env {
			cc.Env = setEnv(cc.Env, kv.Key, kv.Value)
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		bd.meta2(st, "ENV "+strings.Join(parts, " "))
	case *instructions.LabelCommand:
		var parts []string
		for _, kv := range c.Labels {
			if cc.Labels == nil {
				cc.Labels = map[string]string{}
			}
			cc.Labels[kv.Key] = kv.Value
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		bd.meta2(st, "LABEL "+strings.Join(parts, " "))
	case *instructions.MaintainerCommand:
		st.cfg.Author = c.Maintainer
		bd.meta2(st, "MAINTAINER "+c.Maintainer)
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			v, ok := bd.opts.BuildArgs[kv.Key]
			if !ok {
				if kv.Value != nil {
					v, ok = *kv.Value, true
				} else if mv, found := bd.meta[kv.Key]; found {
					v, ok = mv, true
				}
			}
			if ok {
				st.args[kv.Key] = v
			} else {
				st.args[kv.Key] = ""
			}
			st.advance("ARG", kv.Key, v)
		}
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			p, err := expand(p)
			if err != nil {
				return err
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			if cc.ExposedPorts == nil {
				cc.ExposedPorts = map[string]struct{}{}
			}
			cc.ExposedPorts[strings.ToLower(p)] = struct{}{}
			ports = append(ports, p)
		}
		bd.meta2(st, "EXPOSE "+strings.Join(ports, " "))
	case *instructions.VolumeCommand:
		for _, v := range c.Volumes {
			if v == "" {
				return errdefs.InvalidArgument("VOLUME specified can not be an empty string")
			}
			if cc.Volumes == nil {
				cc.Volumes = map[string]struct{}{}
			}
			cc.Volumes[v] = struct{}{}
		}
		bd.meta2(st, fmt.Sprintf("VOLUME %q", c.Volumes))
	case *instructions.UserCommand:
		cc.User = c.User
		bd.meta2(st, "USER "+c.User)
	case *instructions.StopSignalCommand:
		cc.StopSignal = c.Signal
		bd.meta2(st, "STOPSIGNAL "+c.Signal)
	case *instructions.CmdCommand:
		cc.Cmd = bd.commandLine(st, c.ShellDependantCmdLine)
		st.cmdSet = true
		bd.meta2(st, fmt.Sprintf("CMD %q", cc.Cmd))
	case *instructions.EntrypointCommand:
		cc.Entrypoint = bd.commandLine(st, c.ShellDependantCmdLine)
		if !st.cmdSet {
			cc.Cmd = nil
		}
		bd.meta2(st, fmt.Sprintf("ENTRYPOINT %q", cc.Entrypoint))
	case *instructions.ShellCommand:
		cc.Shell = slices.Clone(c.Shell)
		bd.meta2(st, fmt.Sprintf("SHELL %q", c.Shell))
	case *instructions.OnbuildCommand:
		cc.OnBuild = append(cc.OnBuild, c.Expression)
		bd.meta2(st, "ONBUILD "+c.Expression)
	case *instructions.HealthCheckCommand:
		h := c.Health
		cc.Healthcheck = &image.HealthConfig{
			Test: slices.Clone(h.Test), Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		}
		bd.meta2(st, fmt.Sprintf("HEALTHCHECK %q", h.Test))
	case *instructions.WorkdirCommand:
		return bd.workdir(ctx, st, c, title)
	case *instructions.RunCommand:
		return bd.run(ctx, st, c, title)
	case *instructions.CopyCommand:
		return bd.copy(ctx, st, copyArgs{
			name: "COPY", sd: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod,
			excludes: c.ExcludePatterns, parents: c.Parents, link: c.Link,
		}, title)
	case *instructions.AddCommand:
		return bd.copy(ctx, st, copyArgs{
			name: "ADD", sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod, excludes: c.ExcludePatterns,
			checksum: c.Checksum, add: true, unpack: c.Unpack == nil || *c.Unpack, link: c.Link,
		}, title)
	default:
		return errdefs.NotImplemented("%s is not supported", strings.ToUpper(cmd.Name()))
	}
	return nil
}

// meta2 records an instruction that changes only the configuration.
func (bd *builder) meta2(st *state, createdBy string) {
	st.advance(createdBy)
	bd.addHistory(st, createdBy, true)
}

// commandLine is CMD's or ENTRYPOINT's command, in exec form.
func (bd *builder) commandLine(st *state, cl instructions.ShellDependantCmdLine) []string {
	if cl.PrependShell {
		return append(st.shellOf(), strings.Join(cl.CmdLine, " "))
	}
	return slices.Clone(cl.CmdLine)
}

// cachedStep looks key up; on a hit it moves st to the recorded state.
func (bd *builder) cachedStep(st *state, key digest.Digest, v *vertex, createdBy string) bool {
	if bd.opts.NoCache {
		return false
	}
	rec := bd.opts.Cache.Get(key)
	if rec == nil {
		return false
	}
	empty := len(rec.Layers) == len(st.layers)
	st.layers = rec.Layers
	st.clock = rec.Created
	st.key = key
	bd.addHistory(st, createdBy, empty)
	v.cached()
	bd.count(true)
	return true
}

// commit ends a step that changed snap: its layer (if anything changed)
// joins the state, and the cache records it.
func (bd *builder) commit(ctx context.Context, st *state, snap Snapshot, key digest.Digest, createdBy string) error {
	l, changed, err := snap.Commit(ctx, bd.epoch())
	if err != nil {
		return err
	}
	if changed {
		st.layers = append(slices.Clone(st.layers), l)
	}
	st.clock = time.Now().UTC()
	st.key = key
	bd.addHistory(st, createdBy, !changed)
	bd.count(false)
	return bd.opts.Cache.Put(key, &cache.Record{Layers: st.layers, Created: st.clock})
}

// workdir sets the working directory and makes it if it is missing.
func (bd *builder) workdir(ctx context.Context, st *state, c *instructions.WorkdirCommand, title string) (err error) {
	st.cfg.Config.WorkingDir = st.workdir(c.Path)
	createdBy := "WORKDIR " + st.cfg.Config.WorkingDir
	key := digest.FromString(st.key.String() + "\n" + createdBy + "\x00" + st.cfg.Config.User)
	v := bd.prog.vertex(title)
	defer func() {
		if err != nil {
			v.fail(err)
		}
	}()
	if bd.cachedStep(st, key, v, createdBy) {
		return nil
	}
	snap, err := bd.b.Prepare(ctx, st.layers)
	if err != nil {
		return err
	}
	defer snap.Release(context.WithoutCancel(ctx))
	cp := &copier{root: snap.Root(), src: &source{}}
	if u := st.cfg.Config.User; u != "" {
		if o, err := resolveOwner(snap.Root(), u); err == nil {
			cp.opts.chown = o
		}
	}
	if _, err := cp.mkdirAll(st.cfg.Config.WorkingDir); err != nil {
		return err
	}
	if err := bd.commit(ctx, st, snap, key, createdBy); err != nil {
		return err
	}
	v.done()
	return nil
}

// run runs a RUN step's command on a snapshot of the stage.
func (bd *builder) run(ctx context.Context, st *state, c *instructions.RunCommand, title string) (err error) {
	args := slices.Clone(c.CmdLine)
	if script, ok := heredocScript(c); ok {
		args = append(st.shellOf(), script)
	} else if c.PrependShell {
		args = append(st.shellOf(), strings.Join(c.CmdLine, " "))
	}
	env := slices.Clone(st.cfg.Config.Env)
	argNames := make([]string, 0, len(st.args))
	for k := range st.args {
		argNames = append(argNames, k)
	}
	sort.Strings(argNames)
	for _, k := range argNames {
		if !hasEnv(env, k) {
			env = append(env, k+"="+st.args[k])
		}
	}
	keyEnv := slices.Clone(env)
	for _, k := range proxyArgs {
		if v, ok := bd.opts.BuildArgs[k]; ok && !hasEnv(env, k) {
			env = append(env, k+"="+v)
		}
	}
	if !hasEnv(env, "PATH") {
		env = append(env, "PATH="+defaultPath)
		keyEnv = append(keyEnv, "PATH="+defaultPath)
	}
	network := instructions.GetNetwork(c)
	mounts := instructions.GetMounts(c)
	mountDesc, _ := jsonString(mounts)
	createdBy := "RUN " + strings.Join(args, " ") + " # buildkit"
	key := digest.FromString(strings.Join([]string{
		st.key.String(), "RUN", jsonMust(args), jsonMust(keyEnv), st.cfg.Config.User,
		st.cfg.Config.WorkingDir, network, mountDesc,
	}, "\n"))
	// A bind or cache mount from another stage depends on that stage.
	for _, m := range mounts {
		if m.From != "" {
			if j, ok := bd.df.stageIndex(m.From, len(bd.df.stages)); ok {
				from, err := bd.waitStage(ctx, j)
				if err != nil {
					return err
				}
				key = digest.FromString(key.String() + "\n" + from.key.String())
			} else {
				key = digest.FromString(key.String() + "\nimage " + m.From)
			}
		} else if m.Type == instructions.MountTypeBind {
			// A bind mount of the context: its content is part of the key.
			src := &source{root: bd.opts.ContextDir, ignore: bd.ignore, name: "context"}
			if bd.opts.ContextDir != "" {
				d, err := src.digestSources([]string{m.Source})
				if err != nil {
					return err
				}
				key = digest.FromString(key.String() + "\n" + d.String())
			}
		}
	}
	v := bd.prog.vertex(title)
	defer func() {
		if err != nil {
			v.fail(err)
		}
	}()
	if bd.cachedStep(st, key, v, createdBy) {
		return nil
	}
	snap, err := bd.b.Prepare(ctx, st.layers)
	if err != nil {
		return err
	}
	defer snap.Release(context.WithoutCancel(ctx))
	specMounts, cleanup, err := bd.runMounts(ctx, st, mounts)
	defer cleanup()
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	lw := &lineWriter{v: v}
	copied := make(chan struct{})
	go func() {
		io.Copy(lw, pr)
		pr.Close()
		close(copied)
	}()
	wd := st.cfg.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	code, err := bd.b.Run(ctx, snap.Root(), Process{
		Args: args, Env: env, Cwd: wd, User: st.cfg.Config.User,
		Mounts: specMounts, Network: network, Stdout: pw, Stderr: pw,
	})
	pw.Close()
	<-copied
	lw.flush()
	if err != nil {
		return err
	}
	if code != 0 {
		return &RunError{Cmd: args, Code: code, Tail: v.lastLines()}
	}
	if err := bd.commit(ctx, st, snap, key, createdBy); err != nil {
		return err
	}
	v.done()
	return nil
}

func hasEnv(env []string, k string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
}

func jsonString(v any) (string, error) {
	b, err := jsonMarshal(v)
	return string(b), err
}

func jsonMust(v any) string {
	s, _ := jsonString(v)
	return s
}

// runMounts turns RUN --mount's into the runtime's mounts. cleanup
// releases what they needed (snapshots of stages, temporary files).
func (bd *builder) runMounts(ctx context.Context, st *state, ms []*instructions.Mount) ([]specs.Mount, func(), error) {
	var out []specs.Mount
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	for _, m := range ms {
		target := m.Target
		if target != "" && !path.IsAbs(target) {
			target = st.workdir(target)
		}
		switch m.Type {
		case instructions.MountTypeCache:
			id := m.CacheID
			if id == "" {
				id = target
			}
			dir, err := bd.opts.Cache.MountDir(id)
			if err != nil {
				return nil, cleanup, err
			}
			if m.UID != nil || m.GID != nil || m.Mode != nil {
				uid, gid := 0, 0
				if m.UID != nil {
					uid = int(*m.UID)
				}
				if m.GID != nil {
					gid = int(*m.GID)
				}
				os.Lchown(dir, uid, gid)
				if m.Mode != nil {
					os.Chmod(dir, os.FileMode(*m.Mode&0o777))
				}
			}
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: dir, Options: []string{"rbind", "rw"}})
		case instructions.MountTypeTmpfs:
			opts := []string{"nosuid", "nodev"}
			if m.SizeLimit > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", m.SizeLimit))
			}
			out = append(out, specs.Mount{Destination: target, Type: "tmpfs", Source: "tmpfs", Options: opts})
		case instructions.MountTypeBind:
			root := bd.opts.ContextDir
			if m.From != "" {
				var layers []Layer
				if j, ok := bd.df.stageIndex(m.From, len(bd.df.stages)); ok {
					from, err := bd.waitStage(ctx, j)
					if err != nil {
						return nil, cleanup, err
					}
					layers = from.layers
				} else {
					img, err := bd.image(ctx, m.From)
					if err != nil {
						return nil, cleanup, err
					}
					layers = img.Layers
				}
				snap, err := bd.b.Prepare(ctx, layers)
				if err != nil {
					return nil, cleanup, err
				}
				undo = append(undo, func() { snap.Release(context.WithoutCancel(ctx)) })
				root = snap.Root()
			} else if root == "" {
				return nil, cleanup, errdefs.InvalidArgument("--mount=type=bind needs a build context")
			}
			src, err := (&source{root: root}).resolve(m.Source)
			if err != nil {
				return nil, cleanup, err
			}
			opts := []string{"rbind", "ro"}
			if !m.ReadOnly {
				// Writes to a read-write bind mount are discarded, as in
				// BuildKit: the process writes to a copy.
				tmp, err := os.MkdirTemp("", "berth-bind-")
				if err != nil {
					return nil, cleanup, err
				}
				undo = append(undo, func() { os.RemoveAll(tmp) })
				cp := &copier{root: tmp, src: &source{root: src, keepOwner: true}}
				if fi, err := os.Stat(src); err == nil && fi.IsDir() {
					if err := cp.copyTree(src, ".", tmp); err != nil {
						return nil, cleanup, err
					}
					src = tmp
				} else if err == nil {
					dst := filepath.Join(tmp, "file")
					if err := cp.copyEntry(src, dst, fi); err != nil {
						return nil, cleanup, err
					}
					src = dst
				}
				opts = []string{"rbind", "rw"}
			}
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: src, Options: opts})
		case instructions.MountTypeSecret:
			id := m.CacheID
			if id == "" && target != "" {
				id = path.Base(target)
			}
			if target == "" {
				target = "/run/secrets/" + id
			}
			hostPath, ok := bd.opts.Secrets[id]
			if !ok {
				if m.Required {
					return nil, cleanup, errdefs.InvalidArgument("secret %s: not provided (--secret id=%s,src=PATH)", id, id)
				}
				continue
			}
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: hostPath, Options: []string{"rbind", "ro"}})
		default:
			return nil, cleanup, errdefs.NotImplemented("--mount=type=%s is not supported", m.Type)
		}
	}
	return out, cleanup, nil
}

// resolve returns the host path of rel inside the source's root.
func (s *source) resolve(rel string) (string, error) {
	p, err := securejoinIn(s.root, rel)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); err != nil {
		return "", errdefs.NotFound("%q not found", rel)
	}
	return p, nil
}

// copyArgs are a COPY's or an ADD's arguments.
type copyArgs struct {
	name               string
	sd                 instructions.SourcesAndDest
	from, chown, chmod string
	checksum           string
	excludes           []string
	parents, link      bool
	add, unpack        bool
}

// copy runs COPY or ADD: the sources' content is hashed for the key; on
// a miss they are copied into a snapshot of the stage.
func (bd *builder) copy(ctx context.Context, st *state, a copyArgs, title string) (err error) {
	v := bd.prog.vertex(title)
	defer func() {
		if err != nil {
			v.fail(err)
		}
	}()
	src := &source{root: bd.opts.ContextDir, ignore: bd.ignore, name: "context"}
	var fromKey string
	var fromLayers []Layer
	switch {
	case a.from != "":
		if j, ok := bd.df.stageIndex(a.from, len(bd.df.stages)); ok {
			from, err := bd.waitStage(ctx, j)
			if err != nil {
				return err
			}
			fromKey, fromLayers = from.key.String(), from.layers
		} else {
			img, err := bd.image(ctx, a.from)
			if err != nil {
				return fmt.Errorf("--from=%s: %w", a.from, err)
			}
			fromKey, fromLayers = "image "+img.ID.String(), img.Layers
		}
		src = &source{keepOwner: true, name: "--from=" + a.from}
	case len(a.sd.SourcePaths) > 0 && bd.opts.ContextDir == "":
		return errdefs.InvalidArgument("%s needs a build context", a.name)
	}
	if len(a.excludes) > 0 && src.root != "" {
		pats := slices.Clone(bd.opts.Ignore)
		pats = append(pats, a.excludes...)
		pm, err := patternmatcher.New(pats)
		if err != nil {
			return errdefs.InvalidArgument("invalid --exclude: %v", err)
		}
		src.ignore = pm
	}
	dest := a.sd.DestPath
	absDest := st.workdir(dest)
	if strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.") {
		absDest = strings.TrimSuffix(absDest, "/") + "/"
	}
	createdBy := fmt.Sprintf("%s %s%s %s # buildkit", a.name, flagsDesc(a), strings.Join(a.sd.SourcePaths, " "), absDest)

	// Sources: URLs are fetched first (ADD), so their content keys.
	var urlDir string
	var paths []string
	for _, p := range a.sd.SourcePaths {
		if a.add && isURL(p) {
			if urlDir == "" {
				if urlDir, err = os.MkdirTemp("", "berth-add-"); err != nil {
					return err
				}
				defer os.RemoveAll(urlDir)
			}
			name, err := fetch(ctx, p, urlDir, a.checksum)
			if err != nil {
				return err
			}
			paths = append(paths, "url:"+name)
			continue
		}
		paths = append(paths, p)
	}

	// What the key needs: the sources' content (the context), or the
	// source stage's key (--from).
	var snapFrom Snapshot
	if a.from != "" {
		snapFrom, err = bd.b.Prepare(ctx, fromLayers)
		if err != nil {
			return err
		}
		defer snapFrom.Release(context.WithoutCancel(ctx))
		src.root = snapFrom.Root()
	}
	type matched struct {
		src  *source
		rels []string
	}
	var groups []matched
	// A --link layer is made on its own, so its key leaves the stage's
	// key out: the same sources make the same layer on any parent. Only
	// a --chown by name reads the parent (its /etc/passwd).
	parentKey := st.key.String()
	linkNames := a.link && a.chown != "" && !numericOwner(a.chown)
	if a.link && !linkNames {
		parentKey = "link"
	}
	h := digest.SHA256.Digester()
	fmt.Fprintf(h.Hash(), "%s\n%s\n%s\n%s\n", parentKey, createdBy, fromKey, jsonMust(a.sd.SourceContents))
	total := 0
	for _, p := range paths {
		s := src
		rp := p
		if name, ok := strings.CutPrefix(p, "url:"); ok {
			s, rp = &source{root: urlDir, name: "url"}, name
		}
		rels, err := s.match(rp)
		if err != nil {
			return err
		}
		total += len(rels)
		groups = append(groups, matched{s, rels})
		if a.from == "" {
			d, err := s.digestSources(rels)
			if err != nil {
				return err
			}
			fmt.Fprintf(h.Hash(), "%s %s\n", p, d)
		} else {
			fmt.Fprintf(h.Hash(), "%s %q\n", p, rels)
		}
	}
	key := h.Digest()
	if a.link {
		if bd.cachedLink(ctx, st, key, v, createdBy) {
			return nil
		}
	} else if bd.cachedStep(st, key, v, createdBy) {
		return nil
	}

	base := st.layers
	if a.link {
		base = nil
	}
	snap, err := bd.b.Prepare(ctx, base)
	if err != nil {
		return err
	}
	defer snap.Release(context.WithoutCancel(ctx))
	opts := copyOpts{}
	ownerRoot := snap.Root()
	if linkNames {
		parent, err := bd.b.Prepare(ctx, st.layers)
		if err != nil {
			return err
		}
		defer parent.Release(context.WithoutCancel(ctx))
		ownerRoot = parent.Root()
	}
	if opts.chown, err = resolveOwner(ownerRoot, a.chown); err != nil {
		return err
	}
	if opts.chmod, err = parseChmod(a.chmod); err != nil {
		return err
	}
	many := total+len(a.sd.SourceContents) > 1
	for _, g := range groups {
		cp := &copier{root: snap.Root(), src: g.src, opts: opts}
		if a.add && a.unpack && g.src.name == "context" {
			var rest []string
			for _, rel := range g.rels {
				ok, err := cp.extract(ctx, rel, absDest)
				if err != nil {
					return err
				}
				if !ok {
					rest = append(rest, rel)
				}
			}
			g.rels = rest
		}
		if a.parents {
			for _, rel := range g.rels {
				if err := cp.copyAll([]string{rel}, path.Join(absDest, path.Dir(rel))+"/", false); err != nil {
					return err
				}
			}
			continue
		}
		if err := cp.copyAll(g.rels, absDest, many); err != nil {
			return err
		}
	}
	for _, sc := range a.sd.SourceContents {
		cp := &copier{root: snap.Root(), src: &source{}, opts: opts}
		target := absDest
		if strings.HasSuffix(absDest, "/") {
			target = path.Join(absDest, sc.Path)
		}
		if err := cp.writeFile(target, sc.Data); err != nil {
			return err
		}
	}
	if a.link {
		err = bd.commitLink(ctx, st, snap, key, createdBy)
	} else {
		err = bd.commit(ctx, st, snap, key, createdBy)
	}
	if err != nil {
		return err
	}
	v.done()
	return nil
}

// numericOwner reports whether a --chown names its user (and group) by
// number only.
func numericOwner(spec string) bool {
	for _, part := range strings.Split(spec, ":") {
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return false
		}
	}
	return true
}

// linkState is the state after a --link layer: the layer joins the
// stack (unpacked on the stage's layers if it is new there), and the
// stage's key moves past the step's.
func (bd *builder) linkState(ctx context.Context, st *state, rec *cache.Record, key digest.Digest, createdBy string) error {
	layers := slices.Clone(st.layers)
	layers = append(layers, rec.Layers...)
	if len(rec.Layers) > 0 {
		if err := bd.b.Stack(ctx, layers); err != nil {
			return err
		}
	}
	st.layers = layers
	st.clock = rec.Created
	st.advance("link", key.String())
	bd.addHistory(st, createdBy, len(rec.Layers) == 0)
	return nil
}

// cachedLink looks a --link step up: its record holds its own layer only.
func (bd *builder) cachedLink(ctx context.Context, st *state, key digest.Digest, v *vertex, createdBy string) bool {
	if bd.opts.NoCache {
		return false
	}
	rec := bd.opts.Cache.Get(key)
	if rec == nil || len(rec.Layers) > 1 {
		return false
	}
	if bd.linkState(ctx, st, rec, key, createdBy) != nil {
		return false
	}
	v.cached()
	bd.count(true)
	return true
}

// commitLink ends a --link step: snap, made on no parent, holds only the
// copied files; its layer is recorded alone and then stacked.
func (bd *builder) commitLink(ctx context.Context, st *state, snap Snapshot, key digest.Digest, createdBy string) error {
	l, changed, err := snap.Commit(ctx, bd.epoch())
	if err != nil {
		return err
	}
	rec := &cache.Record{Created: time.Now().UTC()}
	if changed {
		rec.Layers = []Layer{l}
	}
	if err := bd.linkState(ctx, st, rec, key, createdBy); err != nil {
		return err
	}
	bd.count(false)
	return bd.opts.Cache.Put(key, rec)
}

func flagsDesc(a copyArgs) string {
	var s string
	if a.from != "" {
		s += "--from=" + a.from + " "
	}
	if a.chown != "" {
		s += "--chown=" + a.chown + " "
	}
	if a.chmod != "" {
		s += "--chmod=" + a.chmod + " "
	}
	if a.parents {
		s += "--parents "
	}
	if a.link {
		s += "--link "
	}
	for _, e := range a.excludes {
		s += "--exclude=" + e + " "
	}
	return s
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// fetch downloads an ADD URL into dir, checking its digest when one is
// given, and returns the file's name there.
func fetch(ctx context.Context, rawURL, dir, checksum string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", errdefs.InvalidArgument("ADD %s: %v", rawURL, err)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		name = "index.html"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ADD %s: %s", rawURL, resp.Status)
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	dg := digest.SHA256.Digester()
	_, err = io.Copy(io.MultiWriter(f, dg.Hash()), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	if checksum != "" && dg.Digest().String() != checksum {
		return "", errdefs.InvalidArgument("ADD %s: digest mismatch %s: %s", rawURL, checksum, dg.Digest())
	}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		os.Chtimes(p, lm, lm)
	}
	return name, nil
}

// extract unpacks rel into dest when it is a (possibly compressed) tar
// archive, as ADD does for local archives; ok is false when it is not
// one.
func (c *copier) extract(ctx context.Context, rel, dest string) (bool, error) {
	p, err := securejoinIn(c.src.root, rel)
	if err != nil {
		return false, err
	}
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return false, nil
	}
	if !isTar(p) {
		return false, nil
	}
	dir, err := c.mkdirAll(dest)
	if err != nil {
		return false, err
	}
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := archive.Apply(ctx, dir, f, archive.ApplyOptions{Whiteouts: archive.WhiteoutDelete}); err != nil {
		return false, fmt.Errorf("ADD %s: %w", rel, err)
	}
	return true, nil
}

// isTar reports whether the file at p is a tar archive, compressed or not.
func isTar(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, _, err := archive.DecompressStream(f)
	if err != nil {
		return false
	}
	defer r.Close()
	buf := make([]byte, 512)
	if _, err := io.ReadFull(r, buf); err != nil {
		return false
	}
	return string(buf[257:262]) == "ustar"
}
