package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
)

// splitCpArg reads a cp argument as docker does: CONTAINER:PATH, or a
// local path (one that starts with / or . may hold a colon).
func splitCpArg(arg string) (ctr, p string) {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return ctr, p
}

func newCpCmd(a *App) *cobra.Command {
	var opts engine.CopyOptions
	c := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: "Copy files/folders between a container and the local filesystem\n\n" +
			"Use '-' as the source to read a tar archive from stdin\n" +
			"and extract it to a directory destination in a container.\n" +
			"Use '-' as the destination to stream a tar archive of a\n" +
			"container source to stdout.",
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcCtr, src := splitCpArg(args[0])
			dstCtr, dst := splitCpArg(args[1])
			if src == "" || dst == "" {
				return errdefs.InvalidArgument("filepath can not be empty")
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			switch {
			case srcCtr != "" && dstCtr != "":
				return errdefs.InvalidArgument("copying between containers is not supported")
			case srcCtr != "":
				return e.CopyFromContainer(cmd.Context(), srcCtr, src, dst, a.Out, opts)
			case dstCtr != "":
				return e.CopyToContainer(cmd.Context(), dstCtr, src, dst, a.In, opts)
			}
			return errdefs.InvalidArgument("must specify at least one container source")
		},
	}
	c.Flags().BoolVarP(&opts.Archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	c.Flags().BoolVarP(&opts.FollowLink, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	c.Flags().BoolP("quiet", "q", false, "Suppress progress output during copy")
	return c
}

func newExportCmd(a *App) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var w io.Writer = a.Out
			if output == "" {
				if f, ok := a.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return errdefs.InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
				}
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			var f *os.File
			if output != "" {
				if f, err = os.Create(output); err != nil {
					return fmt.Errorf("failed to export container: %w", err)
				}
				w = f
			}
			err = e.Export(cmd.Context(), args[0], w)
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(output)
				}
			}
			return err
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return c
}

func newDiffCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			changes, err := e.Diff(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, ch := range changes {
				fmt.Fprintf(a.Out, "%c %s\n", ch.Kind, ch.Path)
			}
			return nil
		},
	}
}

func newCommitCmd(a *App) *cobra.Command {
	var opts engine.CommitOptions
	c := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return errdefs.InvalidArgument("%q requires at least 1 and at most 2 arguments.\nSee '%s --help'.", cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				opts.Ref = args[1]
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			id, err := e.Commit(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.Out, id)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVarP(&opts.Author, "author", "a", "", "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")")
	fl.StringVarP(&opts.Message, "message", "m", "", "Commit message")
	fl.StringArrayVarP(&opts.Changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	fl.BoolVarP(&opts.Pause, "pause", "p", true, "Pause container during commit")
	return c
}
