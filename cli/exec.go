package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/engine"
)

func newExecCmd(a *App) *cobra.Command {
	var detach, interactive, tty, privileged bool
	var env, envFile []string
	var user, workdir string
	c := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.ExecOptions{Cmd: args[1:], User: user, WorkingDir: workdir, Privileged: privileged, Tty: tty, Detach: detach}
			for _, file := range envFile {
				kvs, err := readEnvFile(file)
				if err != nil {
					return err
				}
				opts.Env = append(opts.Env, kvs...)
			}
			for _, kv := range env {
				if !strings.Contains(kv, "=") {
					v, ok := os.LookupEnv(kv)
					if !ok {
						continue
					}
					kv += "=" + v
				}
				opts.Env = append(opts.Env, kv)
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			streams, restore := &engine.Streams{}, func() {}
			if !detach {
				streams, restore = a.attachStreams(interactive, tty)
			}
			code, err := e.ExecContainer(cmd.Context(), args[0], opts, streams)
			restore()
			var ee *engine.ExitError
			if errors.As(err, &ee) {
				fmt.Fprintln(a.Err, oneLine(err))
				return exitError{ee.Code}
			}
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	fl.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	fl.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&envFile, "env-file", nil, "Read in a file of environment variables")
	fl.StringVarP(&user, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	fl.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	fl.String("detach-keys", "", "Override the key sequence for detaching a container")
	return c
}
