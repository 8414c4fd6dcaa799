package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli/format"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/filters"
)

func newImageCmd(a *App) *cobra.Command {
	c := &cobra.Command{Use: "image", Short: "Manage images", Args: noArgs, RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() }}
	c.AddCommand(
		newImagesCmd(a, "ls"), newImageInspectCmd(a), newTagCmd(a, "tag"), newRmiCmd(a, "rm"),
		newHistoryCmd(a, "history"), newImportCmd(a, "import"), newSaveCmd(a, "save"),
		newLoadCmd(a, "load"), newImagePruneCmd(a), a.tool("pull"), a.tool("push"),
	)
	return c
}

// imageRow is what `images --format` templates see, with Docker's field names.
type imageRow struct {
	ID, Repository, Tag, Digest, CreatedSince, CreatedAt, Size string
	Containers, SharedSize, UniqueSize, VirtualSize            string
}

var imageHeaders = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
}

func newImagesCmd(a *App, use string) *cobra.Command {
	var all, quiet, digests, noTrunc bool
	var filterArgs []string
	var formatStr string
	c := &cobra.Command{
		Use:     use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Short:   "List images",
		Aliases: aliasesFor(use, "list"),
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "dangling", "label", "reference", "before", "since")
			if err != nil {
				return err
			}
			if _, _, err := f.Bool("dangling"); err != nil {
				return err
			}
			if len(args) == 1 {
				f["reference"] = append(f["reference"], args[0])
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			list, err := e.Images(cmd.Context(), engine.ImageListOptions{All: all, Filters: f})
			if err != nil {
				return err
			}
			if quiet {
				seen := map[string]bool{}
				for _, s := range list {
					id := shortID(s.ID.String(), noTrunc)
					if !seen[id] {
						fmt.Fprintln(a.Out, id)
						seen[id] = true
					}
				}
				return nil
			}
			def := "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
			if digests {
				def = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
			}
			t, err := format.Parse(formatStr, def, imageHeaders)
			if err != nil {
				return err
			}
			now := time.Now()
			var rows []any
			for _, s := range list {
				for _, r := range imageRows(s, now, noTrunc, digests) {
					rows = append(rows, r)
				}
			}
			return t.Execute(a.Out, rows)
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all images (default hides intermediate images)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	fl.BoolVar(&digests, "digests", false, "Show digests")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringArrayVarP(&filterArgs, "filter", "f", nil, "Filter output based on conditions provided")
	fl.StringVar(&formatStr, "format", "", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
	return c
}

// imageRows turns one image into Docker's rows: one per tag, or one
// <none>:<none> row for an untagged image.
func imageRows(s engine.ImageSummary, now time.Time, noTrunc, digests bool) []imageRow {
	base := imageRow{
		ID:           shortID(s.ID.String(), noTrunc),
		CreatedSince: format.Since(s.Created, now),
		CreatedAt:    s.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		Size:         format.Size(s.Size),
		VirtualSize:  format.Size(s.Size),
		Digest:       "<none>",
		Containers:   "N/A",
		SharedSize:   "N/A",
		UniqueSize:   "N/A",
	}
	digestFor := func(repo string) string {
		for _, d := range s.RepoDigests {
			if r, dg, ok := strings.Cut(d, "@"); ok && r == repo {
				return dg
			}
		}
		return "<none>"
	}
	var rows []imageRow
	for _, t := range s.RepoTags {
		i := strings.LastIndex(t, ":")
		r := base
		r.Repository, r.Tag = t[:i], t[i+1:]
		r.Digest = digestFor(r.Repository)
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		r := base
		r.Repository, r.Tag = "<none>", "<none>"
		if len(s.RepoDigests) > 0 {
			repo, dg, _ := strings.Cut(s.RepoDigests[0], "@")
			r.Repository, r.Digest = repo, dg
		}
		rows = append(rows, r)
	}
	return rows
}

func shortID(id string, noTrunc bool) string {
	if noTrunc {
		return id
	}
	return format.TruncateID(id)
}

func aliasesFor(use string, extra ...string) []string {
	if use == "ls" || use == "rm" {
		return extra
	}
	return nil
}

func newImageInspectCmd(a *App) *cobra.Command {
	var formatStr string
	c := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspectObjects(a, cmd, args, formatStr, "image")
		},
	}
	c.Flags().StringVarP(&formatStr, "format", "f", "", "Format output using a custom template")
	return c
}

// newInspectCmd is the generic `inspect`: containers, images, volumes.
func newInspectCmd(a *App) *cobra.Command {
	var formatStr, typ string
	c := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on berth objects",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch typ {
			case "", "container", "image", "volume":
			default:
				return errdefs.InvalidArgument("%q is not a valid value for --type", typ)
			}
			return inspectObjects(a, cmd, args, formatStr, typ)
		},
	}
	c.Flags().StringVarP(&formatStr, "format", "f", "", "Format output using a custom template")
	c.Flags().StringVar(&typ, "type", "", "Return JSON for specified type")
	return c
}

func newTagCmd(a *App, use string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			return e.Tag(cmd.Context(), args[0], args[1])
		},
	}
}

func newRmiCmd(a *App, use string) *cobra.Command {
	var force, noPrune bool
	c := &cobra.Command{
		Use:     use + " [OPTIONS] IMAGE [IMAGE...]",
		Short:   "Remove one or more images",
		Aliases: aliasesFor(use, "rmi", "remove"),
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			var errs []string
			for _, n := range args {
				res, err := e.RemoveImage(cmd.Context(), n, force)
				if err != nil {
					errs = append(errs, oneLine(err))
					continue
				}
				printDeletes(a.Out, res)
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "\nError: "))
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	c.Flags().BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	return c
}

func printDeletes(w io.Writer, res []engine.DeleteResponse) {
	for _, r := range res {
		if r.Untagged != "" {
			fmt.Fprintf(w, "Untagged: %s\n", r.Untagged)
		}
		if r.Deleted != "" {
			fmt.Fprintf(w, "Deleted: %s\n", r.Deleted)
		}
	}
}

func newHistoryCmd(a *App, use string) *cobra.Command {
	var human, quiet, noTrunc bool
	var formatStr string
	c := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			hist, err := e.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if quiet {
				for _, h := range hist {
					fmt.Fprintln(a.Out, shortID(h.ID, noTrunc))
				}
				return nil
			}
			t, err := format.Parse(formatStr, "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
				map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT", "CreatedAt": "CREATED AT"})
			if err != nil {
				return err
			}
			now := time.Now()
			var rows []any
			for _, h := range hist {
				id := h.ID
				if id != "<missing>" {
					id = shortID(id, noTrunc)
				}
				by := h.CreatedBy
				if !noTrunc && len(by) > 45 {
					by = by[:44] + "…"
				}
				size := fmt.Sprint(h.Size)
				since, at := h.Created.Format(time.RFC3339), h.Created.Format(time.RFC3339)
				if human {
					size = format.Size(h.Size)
					since = format.Since(h.Created, now)
				}
				rows = append(rows, struct{ ID, CreatedSince, CreatedAt, CreatedBy, Size, Comment string }{id, since, at, by, size, h.Comment})
			}
			return t.Execute(a.Out, rows)
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringVar(&formatStr, "format", "", "Format output using a custom template")
	return c
}

func newImportCmd(a *App, use string) *cobra.Command {
	var changes []string
	var message, platform string
	c := &cobra.Command{
		Use:   use + " [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if platform != "" && platform != "linux/"+goarch() && platform != "linux" {
				return errdefs.InvalidArgument("import: platform %q is not this host's (linux/%s)", platform, goarch())
			}
			opts := engine.ImportOptions{Changes: changes, Message: message, Source: args[0]}
			if len(args) == 2 {
				opts.Ref = args[1]
			}
			if opts.Ref != "" {
				// Check the name before reading anything.
				if _, err := checkTag(opts.Ref); err != nil {
					return err
				}
			}
			var r io.Reader = a.In
			if args[0] != "-" {
				if strings.Contains(args[0], "://") {
					return errdefs.NotImplemented("import: importing from a URL is not supported; download the file first")
				}
				f, err := os.Open(args[0])
				if err != nil {
					return errdefs.NotFound("import: %v", err)
				}
				defer f.Close()
				r = f
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			id, err := e.Import(cmd.Context(), r, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.Out, id)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	fl.StringVarP(&message, "message", "m", "", "Set commit message for imported image")
	fl.StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable")
	return c
}

func newSaveCmd(a *App, use string) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			if output == "" {
				if f, ok := a.Out.(*os.File); ok && isTerminal(f) {
					return errdefs.InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
				}
				return e.Save(cmd.Context(), a.Out, args)
			}
			// Write beside the target and rename, so a failed save leaves no
			// half-written archive under the user's name.
			tmp, err := os.CreateTemp(dirOf(output), ".berth-save-*")
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			defer os.Remove(tmp.Name())
			if err := e.Save(cmd.Context(), tmp, args); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return fmt.Errorf("save: %w", err)
			}
			os.Chmod(tmp.Name(), 0o644)
			return os.Rename(tmp.Name(), output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return c
}

func newLoadCmd(a *App, use string) *cobra.Command {
	var input string
	var quiet bool
	c := &cobra.Command{
		Use:   use + " [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = a.In
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return errdefs.NotFound("load: %v", err)
				}
				defer f.Close()
				r = f
			} else if f, ok := a.In.(*os.File); ok && isTerminal(f) {
				return errdefs.InvalidArgument("requested load from stdin, but stdin is empty")
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			loaded, err := e.Load(cmd.Context(), r)
			if err != nil {
				return err
			}
			for _, li := range loaded {
				if len(li.Tags) == 0 {
					fmt.Fprintf(a.Out, "Loaded image ID: %s\n", li.ID)
				}
				for _, t := range li.Tags {
					fmt.Fprintf(a.Out, "Loaded image: %s\n", t)
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return c
}

func newImagePruneCmd(a *App) *cobra.Command {
	var all, force bool
	var filterArgs []string
	c := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filters.Parse(filterArgs, "until", "label")
			if err != nil {
				return err
			}
			warn := "WARNING! This will remove all dangling images."
			if all {
				warn = "WARNING! This will remove all images without at least one container associated to them."
			}
			if !force && !confirm(a, warn) {
				return nil
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := e.PruneImages(cmd.Context(), all, f)
			if err != nil {
				return err
			}
			printPrune(a, rep, "Deleted Images:")
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	c.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	c.Flags().StringArrayVar(&filterArgs, "filter", nil, "Provide filter values (e.g. \"until=<timestamp>\")")
	return c
}

func printPrune(a *App, rep *engine.PruneReport, title string) {
	if len(rep.Deleted) > 0 {
		fmt.Fprintln(a.Out, title)
		printDeletes(a.Out, rep.Deleted)
		fmt.Fprintln(a.Out)
	}
	fmt.Fprintf(a.Out, "Total reclaimed space: %s\n", format.Size(rep.SpaceReclaimed))
}

// printDeletedNames prints what a prune removed, as docker does: a title,
// a name a line, a blank line (nothing when nothing was removed).
func printDeletedNames(a *App, title string, names []string) {
	if len(names) == 0 {
		return
	}
	fmt.Fprintln(a.Out, title)
	for _, n := range names {
		fmt.Fprintln(a.Out, n)
	}
	fmt.Fprintln(a.Out)
}

// confirm asks the user; no lock is held while it waits.
func confirm(a *App, warning string) bool {
	fmt.Fprintf(a.Out, "%s\nAre you sure you want to continue? [y/N] ", warning)
	var answer string
	fmt.Fscanln(a.In, &answer)
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}
