package imagetools

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/berth-dev/berth/cli"
	"github.com/berth-dev/berth/engine/transfer"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/remotes"
)

func newPullCmd(a *cli.App) *cobra.Command {
	var all, quiet bool
	var platform string
	c := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.Engine(ctx)
			if err != nil {
				return err
			}
			client, err := remotes.New(remotes.Options{})
			if err != nil {
				return err
			}
			pr := newProgressPrinter(a.Out, quiet, true)
			res, err := transfer.Pull(ctx, e, args[0], transfer.PullOptions{Remotes: client, Platform: platform, AllTags: all, Progress: pr.update})
			pr.finish()
			if err != nil {
				return err
			}
			for _, r := range res {
				full := image.Familiar(r.Ref)
				if ref, err := client.ParseReference(r.Ref); err == nil {
					full = ref.Named.String()
				}
				if quiet {
					fmt.Fprintln(a.Out, full)
					continue
				}
				fmt.Fprintf(a.Out, "Digest: %s\n", r.Digest)
				if r.UpToDate {
					fmt.Fprintf(a.Out, "Status: Image is up to date for %s\n", r.Ref)
				} else {
					fmt.Fprintf(a.Out, "Status: Downloaded newer image for %s\n", r.Ref)
				}
				if !all {
					fmt.Fprintln(a.Out, full)
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVarP(&all, "all-tags", "a", false, "Download all tagged images in the repository")
	f.BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	f.StringVar(&platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), "Set platform if server is multi-platform capable (os/arch[/variant])")
	f.Bool("disable-content-trust", true, "Skip image verification (ignored)")
	f.MarkHidden("disable-content-trust")
	return c
}

func newPushCmd(a *cli.App) *cobra.Command {
	var all, quiet bool
	c := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.Engine(ctx)
			if err != nil {
				return err
			}
			client, err := remotes.New(remotes.Options{})
			if err != nil {
				return err
			}
			pr := newProgressPrinter(a.Out, quiet, false)
			res, err := transfer.Push(ctx, e, args[0], transfer.PushOptions{Remotes: client, AllTags: all, Progress: pr.update})
			pr.finish()
			if err != nil {
				return err
			}
			for _, r := range res {
				if quiet {
					if ref, err := client.ParseReference(r.Ref); err == nil {
						fmt.Fprintln(a.Out, ref.Named.String())
					}
					continue
				}
				tag := r.Ref[strings.LastIndex(r.Ref, ":")+1:]
				fmt.Fprintf(a.Out, "%s: digest: %s size: %d\n", tag, r.Digest, r.Size)
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVarP(&all, "all-tags", "a", false, "Push all tags of an image to the repository")
	f.BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	f.Bool("disable-content-trust", true, "Skip image signing (ignored)")
	f.MarkHidden("disable-content-trust")
	return c
}

func newLoginCmd(a *cli.App) *cobra.Command {
	var user, pass string
	var passStdin bool
	c := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := "docker.io"
			if len(args) == 1 {
				host = registryArg(args[0])
			}
			if passStdin {
				if pass != "" {
					return errdefs.InvalidArgument("--password and --password-stdin are mutually exclusive")
				}
				if user == "" {
					return errdefs.InvalidArgument("must provide --username with --password-stdin")
				}
				b, err := io.ReadAll(a.In)
				if err != nil {
					return err
				}
				pass = strings.TrimRight(string(b), "\r\n")
			}
			in := bufio.NewReader(a.In)
			if user == "" {
				fmt.Fprint(a.Out, "Username: ")
				l, err := in.ReadString('\n')
				if err != nil && l == "" {
					return errdefs.InvalidArgument("login %s: a username is required", host)
				}
				user = strings.TrimSpace(l)
			}
			if pass == "" {
				fmt.Fprint(a.Out, "Password: ")
				if f, ok := a.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					b, err := term.ReadPassword(int(f.Fd()))
					fmt.Fprintln(a.Out)
					if err != nil {
						return err
					}
					pass = string(b)
				} else {
					l, _ := in.ReadString('\n')
					pass = strings.TrimRight(l, "\r\n")
				}
			}
			if user == "" || pass == "" {
				return errdefs.InvalidArgument("login %s: username and password are required", host)
			}
			client, err := remotes.New(remotes.Options{})
			if err != nil {
				return err
			}
			if err := client.Login(cmd.Context(), host, user, pass); err != nil {
				return err
			}
			fmt.Fprintln(a.Out, "Login Succeeded")
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&user, "username", "u", "", "Username")
	f.StringVarP(&pass, "password", "p", "", "Password")
	f.BoolVar(&passStdin, "password-stdin", false, "Take the password from stdin")
	return c
}

func newLogoutCmd(a *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := "docker.io"
			if len(args) == 1 {
				host = registryArg(args[0])
			}
			client, err := remotes.New(remotes.Options{})
			if err != nil {
				return err
			}
			had, err := client.Logout(cmd.Context(), host)
			if err != nil {
				return err
			}
			if !had {
				fmt.Fprintf(a.Out, "Not logged in to %s\n", remotes.ServerKey(host))
				return nil
			}
			fmt.Fprintf(a.Out, "Removing login credentials for %s\n", remotes.ServerKey(host))
			return nil
		},
	}
}

// registryArg reads a SERVER argument: a host[:port], or a URL of one.
func registryArg(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func newManifestCmd(a *cli.App) *cobra.Command {
	c := &cobra.Command{Use: "manifest COMMAND", Short: "Inspect image manifests and manifest lists", Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	var verbose bool
	inspect := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Display an image manifest, or manifest list",
		Args:  cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := remotes.New(remotes.Options{})
			if err != nil {
				return err
			}
			m, err := transfer.InspectManifest(cmd.Context(), client, args[0])
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if verbose {
				v := map[string]any{
					"Ref":        m.Ref,
					"Descriptor": map[string]any{"mediaType": m.MediaType, "digest": m.Digest, "size": len(m.Raw)},
					"Raw":        m.Raw,
				}
				b, err := json.MarshalIndent(v, "", "\t")
				if err != nil {
					return err
				}
				buf.Write(b)
			} else if err := json.Indent(&buf, m.Raw, "", "\t"); err != nil {
				return errdefs.DataCorrupt("manifest inspect %s: %v", args[0], err)
			}
			buf.WriteByte('\n')
			_, err = a.Out.Write(buf.Bytes())
			return err
		},
	}
	inspect.Flags().BoolVarP(&verbose, "verbose", "v", false, "Output additional info including the descriptor")
	inspect.Flags().Bool("insecure", false, "Allow communication with an insecure registry (see the registry configuration file)")
	c.AddCommand(inspect)
	return c
}

// progressPrinter shows a pull's or a push's progress: per-layer bars on a
// terminal, Docker's plain status lines elsewhere, nothing with -q.
type progressPrinter struct {
	out   io.Writer
	quiet bool
	pull  bool

	mu   sync.Mutex
	p    *mpb.Progress
	bars map[string]*layerBar
}

type layerBar struct {
	bar    *mpb.Bar
	status atomic.Pointer[string] // read by mpb's goroutine
}

func newProgressPrinter(out io.Writer, quiet, pull bool) *progressPrinter {
	pp := &progressPrinter{out: out, quiet: quiet, pull: pull, bars: map[string]*layerBar{}}
	if f, ok := out.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		pp.p = mpb.New(mpb.WithOutput(out), mpb.WithWidth(40))
	}
	return pp
}

func (pp *progressPrinter) update(p transfer.Progress) {
	if pp.quiet {
		return
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if p.ID == "" || strings.HasPrefix(p.Status, "Pulling from") {
		line := p.Status
		if p.ID != "" {
			line = p.ID + ": " + p.Status
		}
		if pp.p != nil {
			fmt.Fprintln(pp.p, line)
		} else {
			fmt.Fprintln(pp.out, line)
		}
		return
	}
	if pp.p == nil {
		// Docker's plain output: one line per change of state, no bytes.
		st := p.Status
		switch st {
		case "Downloading", "Pushing":
			return
		case "Waiting":
			if pp.pull {
				st = "Pulling fs layer"
			}
		}
		fmt.Fprintf(pp.out, "%s: %s\n", p.ID, st)
		return
	}
	lb := pp.bars[p.ID]
	if lb == nil {
		lb = &layerBar{}
		lb.status.Store(&p.Status)
		st := lb
		lb.bar = pp.p.AddBar(p.Total,
			mpb.PrependDecorators(decor.Name(p.ID+": "), decor.Any(func(decor.Statistics) string { return *st.status.Load() }, decor.WC{W: 22, C: decor.DindentRight})),
			mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"), decor.Name(" "), decor.AverageSpeed(decor.SizeB1024(0), "% .1f")),
		)
		pp.bars[p.ID] = lb
	}
	status := p.Status
	lb.status.Store(&status)
	if p.Total > 0 {
		lb.bar.SetTotal(p.Total, false)
	}
	if p.Current > 0 {
		lb.bar.SetCurrent(p.Current)
	}
	switch p.Status {
	case "Already exists", "Pull complete", "Pushed", "Layer already exists", "Download complete":
		if p.Status != "Download complete" || !pp.pull {
			lb.bar.SetTotal(-1, true)
		}
	default:
		if strings.HasPrefix(p.Status, "Mounted from") {
			lb.bar.SetTotal(-1, true)
		}
	}
}

// finish stops the bars (completing or dropping what is left).
func (pp *progressPrinter) finish() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.p == nil {
		return
	}
	for _, lb := range pp.bars {
		if !lb.bar.Completed() {
			lb.bar.Abort(false)
		}
	}
	pp.p.Wait()
	pp.p = nil
}
