package cli

import (
	"os"
	"os/signal"
	"strconv"

	"github.com/berth-dev/berth/internal/signals"
	"github.com/berth-dev/berth/runtime"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

type createFlags struct {
	bundle, consoleSocket, pidFile string
	noPivot, noNewKeyring          bool
	preserveFDs                    int
}

func (c *createFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&c.bundle, "bundle", "b", ".", "path to the bundle")
	f.StringVar(&c.consoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.StringVar(&c.pidFile, "pid-file", "", "file to write the init's pid to")
	f.BoolVar(&c.noPivot, "no-pivot", false, "use MS_MOVE and chroot instead of pivot_root")
	f.BoolVar(&c.noNewKeyring, "no-new-keyring", false, "accepted for compatibility")
	f.IntVar(&c.preserveFDs, "preserve-fds", 0, "pass this many extra descriptors (from 3) to the process")
}

func (c *createFlags) options(a *app) runtime.Options {
	o := runtime.Options{
		Root:          a.root,
		Stdin:         os.Stdin,
		Stdout:        os.Stdout,
		Stderr:        os.Stderr,
		ConsoleSocket: c.consoleSocket,
		PidFile:       c.pidFile,
		NoPivot:       c.noPivot,
	}
	for i := 0; i < c.preserveFDs; i++ {
		o.ExtraFiles = append(o.ExtraFiles, os.NewFile(uintptr(3+i), "fd"+strconv.Itoa(3+i)))
	}
	return o
}

func (a *app) createCmd() *cobra.Command {
	var cf createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] ID",
		Short: "create a container from a bundle",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Create(cmd.Context(), args[0], cf.bundle, cf.options(a))
			if err != nil {
				return err
			}
			c.Release()
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func (a *app) runCmd() *cobra.Command {
	var cf createFlags
	var detach, keep bool
	cmd := &cobra.Command{
		Use:   "run [flags] ID",
		Short: "create and start a container, and wait for it unless detached",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id := args[0]
			if detach {
				c, err := runtime.Create(ctx, id, cf.bundle, cf.options(a))
				if err != nil {
					return err
				}
				defer c.Release()
				return c.Start(ctx)
			}
			// The container's process gets the signals sent to us.
			sigs := make(chan os.Signal, 8)
			signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
			defer signal.Stop(sigs)
			go func() {
				for s := range sigs {
					if c, err := runtime.Load(ctx, a.root, id); err == nil {
						_ = c.Kill(ctx, s.(unix.Signal), false)
					}
				}
			}()
			code, err := runtime.Run(ctx, id, cf.bundle, cf.options(a))
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code}
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "do not wait for the container")
	cmd.Flags().BoolVar(&keep, "keep", false, "accepted for compatibility (the container is always deleted)")
	return cmd
}

func (a *app) startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start ID",
		Short: "start a created container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			return c.Start(cmd.Context())
		},
	}
}

func (a *app) stateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "state ID",
		Short: "print a container's state as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			return a.printJSON(c.State(cmd.Context()))
		},
	}
}

func (a *app) killCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill ID [SIGNAL]",
		Short: "send a signal (default SIGTERM) to a container's init",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = signals.Parse(args[1]); err != nil {
					return err
				}
			}
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			return c.Kill(cmd.Context(), sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "signal every process of the container")
	return cmd
}

func (a *app) deleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete [--force] ID",
		Short: "delete a container and everything the runtime made for it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			return c.Delete(cmd.Context(), force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container if it runs")
	return cmd
}

func (a *app) pauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pause ID",
		Short: "freeze every process of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			return c.Pause(cmd.Context())
		},
	}
}

func (a *app) resumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume ID",
		Short: "thaw a paused container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			return c.Resume(cmd.Context())
		},
	}
}
