package imagetools

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/patternmatcher/ignorefile"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/archive"
	"github.com/berth-dev/berth/build"
	"github.com/berth-dev/berth/cli"
	"github.com/berth-dev/berth/engine/builder"
	"github.com/berth-dev/berth/errdefs"
)

// ExitBuildFailed is docker build's status for a build that failed.
const ExitBuildFailed = 1

func newBuildCmd(a *cli.App) *cobra.Command {
	var (
		tags, buildArgs, labels, secrets []string
		file, target, iidfile, progress  string
		outputs                          []string
		platform                         string
		noCache, quiet, pull             bool
	)
	c := &cobra.Command{
		Use:   "build [OPTIONS] PATH | -",
		Short: "Build an image from a Dockerfile",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch progress {
			case "auto", "plain", "tty", "quiet", "rawjson":
			default:
				return errdefs.InvalidArgument("invalid --progress %q: want auto, plain, tty or quiet", progress)
			}
			for _, p := range strings.Split(platform, ",") {
				if err := build.CheckPlatform(strings.TrimSpace(p)); err != nil {
					return err
				}
			}
			opts := build.Options{Tags: tags, Target: target, NoCache: noCache, Pull: pull, BuildArgs: map[string]string{}, Labels: map[string]string{}, Secrets: map[string]string{}}
			if len(outputs) > 1 {
				return errdefs.InvalidArgument("--output: one output only")
			}
			if len(outputs) == 1 {
				o, err := parseOutput(outputs[0])
				if err != nil {
					return err
				}
				if o.Dest == "-" {
					if term.IsTerminal(int(os.Stdout.Fd())) {
						return errdefs.InvalidArgument("--output: refusing to write an archive to a terminal: give dest= a file")
					}
					o.W = a.Out
				}
				if err := build.CheckOutput(o); err != nil {
					return err
				}
				opts.Output = o
			}
			for _, ba := range buildArgs {
				k, v, ok := strings.Cut(ba, "=")
				if !ok {
					if ev, found := os.LookupEnv(k); found {
						opts.BuildArgs[k] = ev
					}
					continue
				}
				opts.BuildArgs[k] = v
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				opts.Labels[k] = v
			}
			for _, s := range secrets {
				id, src, err := parseSecret(s)
				if err != nil {
					return err
				}
				opts.Secrets[id] = src
			}
			epoch := os.Getenv("SOURCE_DATE_EPOCH")
			if v, ok := opts.BuildArgs["SOURCE_DATE_EPOCH"]; ok {
				epoch = v
			}
			if epoch != "" {
				n, err := strconv.ParseInt(epoch, 10, 64)
				if err != nil {
					return errdefs.InvalidArgument("invalid SOURCE_DATE_EPOCH %q", epoch)
				}
				t := time.Unix(n, 0).UTC()
				opts.Epoch = &t
			}
			cleanup, err := buildInputs(cmd.Context(), a, args[0], file, &opts)
			defer cleanup()
			if err != nil {
				return err
			}
			if !quiet && progress != "quiet" {
				opts.Progress = a.Err
				switch progress {
				case "tty":
					opts.TTY = true
				case "auto":
					f, ok := a.Err.(*os.File)
					opts.TTY = ok && term.IsTerminal(int(f.Fd()))
				}
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			res, err := builder.Build(cmd.Context(), e, opts)
			if err != nil {
				fmt.Fprintf(a.Err, "ERROR: failed to solve: %s\n", strings.TrimSpace(err.Error()))
				return cli.ExitStatus(ExitBuildFailed)
			}
			if iidfile != "" {
				if err := os.WriteFile(iidfile, []byte(res.ID.String()), 0o644); err != nil {
					return fmt.Errorf("write iidfile: %w", err)
				}
			}
			if quiet && opts.Output.Dest != "-" {
				fmt.Fprintln(a.Out, res.ID)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVarP(&tags, "tag", "t", nil, `Name and optionally a tag in the "name:tag" format`)
	f.StringVarP(&file, "file", "f", "", `Name of the Dockerfile (default: "PATH/Dockerfile")`)
	f.StringArrayVar(&buildArgs, "build-arg", nil, "Set build-time variables")
	f.StringArrayVar(&labels, "label", nil, "Set metadata for an image")
	f.StringArrayVar(&secrets, "secret", nil, `Secret to expose to the build (format: "id=mysecret,src=/local/secret")`)
	f.StringVar(&target, "target", "", "Set the target build stage to build")
	f.StringVar(&iidfile, "iidfile", "", "Write the image ID to the file")
	f.StringVar(&progress, "progress", "auto", `Set type of progress output ("auto", "plain", "tty", "quiet")`)
	f.StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	f.BoolVar(&noCache, "no-cache", false, "Do not use cache when building the image")
	f.BoolVarP(&quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	f.BoolVar(&pull, "pull", false, "Always attempt to pull a newer version of the image")
	f.StringArrayVarP(&outputs, "output", "o", nil, `Output destination (format: "type=local,dest=path")`)
	return c
}

// parseOutput reads --output as docker build does: `type=T,dest=D`
// (dest also as dst or name=...: ignored), or a bare path for a local
// directory, or `-` for a tar archive on stdout.
func parseOutput(s string) (build.Output, error) {
	if s == "-" {
		return build.Output{Type: "tar", Dest: "-"}, nil
	}
	if !strings.Contains(s, "=") {
		return build.Output{Type: "local", Dest: s}, nil
	}
	var o build.Output
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(f, "=")
		switch strings.TrimSpace(k) {
		case "type":
			o.Type = v
		case "dest", "dst":
			o.Dest = v
		case "name", "push", "compression", "oci-mediatypes", "tar", "unpack":
		default:
			return o, errdefs.InvalidArgument("invalid --output %q: unknown key %q", s, k)
		}
	}
	if o.Type == "" {
		return o, errdefs.InvalidArgument("invalid --output %q: no type", s)
	}
	return o, nil
}

// parseSecret reads `id=NAME,src=PATH` (also source=, and env=VAR).
func parseSecret(s string) (id, src string, err error) {
	var env string
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "id":
			id = v
		case "src", "source":
			src = v
		case "env":
			env = v
		case "type":
		default:
			return "", "", errdefs.InvalidArgument("invalid --secret %q: unknown key %q", s, k)
		}
	}
	if id == "" {
		return "", "", errdefs.InvalidArgument("invalid --secret %q: no id", s)
	}
	if src == "" && env == "" {
		env = id
	}
	if src == "" {
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", "", errdefs.InvalidArgument("--secret %s: no file and no environment variable %s", id, env)
		}
		f, err := os.CreateTemp("", "berth-secret-")
		if err != nil {
			return "", "", err
		}
		defer f.Close()
		if _, err := f.WriteString(v); err != nil {
			return "", "", err
		}
		src = f.Name()
	}
	return id, src, nil
}

// buildInputs reads the context (a directory, or a tar or Dockerfile on
// stdin), the Dockerfile and the .dockerignore into opts. cleanup removes
// what it unpacked.
func buildInputs(ctx context.Context, a *cli.App, ctxArg, file string, opts *build.Options) (func(), error) {
	cleanup := func() {}
	switch {
	case ctxArg == "-":
		if file == "-" {
			return cleanup, errdefs.InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
		}
		br := bufio.NewReaderSize(a.In, 1<<20)
		r, _, err := archive.DecompressStream(br)
		if err != nil {
			return cleanup, err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return cleanup, fmt.Errorf("read build context from stdin: %w", err)
		}
		if len(data) > 262 && string(data[257:262]) == "ustar" {
			dir, err := os.MkdirTemp("", "berth-context-")
			if err != nil {
				return cleanup, err
			}
			cleanup = func() { os.RemoveAll(dir) }
			if _, err := archive.Apply(ctx, dir, bytes.NewReader(data), archive.ApplyOptions{Whiteouts: archive.WhiteoutDelete}); err != nil {
				return cleanup, fmt.Errorf("unpack build context: %w", err)
			}
			opts.ContextDir = dir
		} else {
			// A Dockerfile alone: no context.
			opts.Dockerfile, opts.DockerfileName = data, "Dockerfile"
			return cleanup, nil
		}
	default:
		fi, err := os.Stat(ctxArg)
		if err != nil {
			return cleanup, errdefs.InvalidArgument("unable to prepare context: path %q not found", ctxArg)
		}
		if !fi.IsDir() {
			return cleanup, errdefs.InvalidArgument("unable to prepare context: path %q is not a directory", ctxArg)
		}
		opts.ContextDir, _ = filepath.Abs(ctxArg)
	}
	dfPath := filepath.Join(opts.ContextDir, "Dockerfile")
	switch {
	case file == "-":
		b, err := io.ReadAll(a.In)
		if err != nil {
			return cleanup, fmt.Errorf("read Dockerfile from stdin: %w", err)
		}
		opts.Dockerfile, opts.DockerfileName = b, "Dockerfile"
		dfPath = ""
	case file != "":
		dfPath = file
		if ctxArg == "-" && !filepath.IsAbs(file) {
			dfPath = filepath.Join(opts.ContextDir, file)
		}
	}
	if dfPath != "" {
		b, err := os.ReadFile(dfPath)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return cleanup, errdefs.InvalidArgument("failed to read dockerfile: open %s: no such file or directory", filepath.Base(dfPath))
			}
			return cleanup, fmt.Errorf("failed to read dockerfile: %w", err)
		}
		opts.Dockerfile, opts.DockerfileName = b, filepath.Base(dfPath)
	}
	// <Dockerfile>.dockerignore beside the Dockerfile wins over the
	// context's .dockerignore.
	ignorePath := filepath.Join(opts.ContextDir, ".dockerignore")
	if dfPath != "" {
		if p := dfPath + ".dockerignore"; fileExists(p) {
			ignorePath = p
		}
	}
	if f, err := os.Open(ignorePath); err == nil {
		pats, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return cleanup, errdefs.InvalidArgument("read %s: %v", ignorePath, err)
		}
		opts.Ignore = pats
	}
	return cleanup, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
