package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
)

func (a *app) execCmd() *cobra.Command {
	var (
		processPath, consoleSocket, pidFile, cwd, user string
		detach, tty, noNewPrivs                        bool
		env, caps, gids                                []string
		preserveFDs                                    int
		ignored                                        string
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] ID [COMMAND [ARG...]]",
		Short: "run a new process inside a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.load(cmd, args[0])
			if err != nil {
				return err
			}
			var p specs.Process
			if processPath != "" {
				b, err := os.ReadFile(processPath)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &p); err != nil {
					return fmt.Errorf("process %s: %w", processPath, err)
				}
			} else {
				if len(args) < 2 {
					return fmt.Errorf("exec needs a command or --process")
				}
				// Defaults from the bundle's process, as runc does.
				base, err := runtime.LoadSpec(c.State(ctx).Bundle)
				if err == nil {
					p = *base.Process
				}
				p.Args = args[1:]
				p.Terminal = tty
				if cwd != "" {
					p.Cwd = cwd
				}
				p.Env = append(p.Env, env...)
				if user != "" {
					u, g, _ := strings.Cut(user, ":")
					uid, err := strconv.ParseUint(u, 10, 32)
					if err != nil {
						return fmt.Errorf("--user: %q is not numeric", user)
					}
					p.User.UID = uint32(uid)
					if g != "" {
						gid, err := strconv.ParseUint(g, 10, 32)
						if err != nil {
							return fmt.Errorf("--user: %q is not numeric", user)
						}
						p.User.GID = uint32(gid)
					}
				}
				for _, g := range gids {
					n, err := strconv.ParseUint(g, 10, 32)
					if err != nil {
						return fmt.Errorf("--additional-gids: %q", g)
					}
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(n))
				}
				if len(caps) > 0 && p.Capabilities != nil {
					for _, c := range caps {
						p.Capabilities.Bounding = append(p.Capabilities.Bounding, c)
						p.Capabilities.Effective = append(p.Capabilities.Effective, c)
						p.Capabilities.Permitted = append(p.Capabilities.Permitted, c)
					}
				}
				if noNewPrivs {
					p.NoNewPrivileges = true
				}
			}
			opts := runtime.ExecOptions{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, ConsoleSocket: consoleSocket, PidFile: pidFile}
			for i := 0; i < preserveFDs; i++ {
				opts.ExtraFiles = append(opts.ExtraFiles, os.NewFile(uintptr(3+i), "fd"))
			}
			proc, err := c.Exec(ctx, &p, opts)
			if err != nil {
				return err
			}
			if detach {
				return proc.Release()
			}
			code, err := proc.Wait()
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&processPath, "process", "p", "", "path to a process.json")
	f.StringVar(&consoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.StringVar(&pidFile, "pid-file", "", "file to write the process's pid to")
	f.StringVar(&cwd, "cwd", "", "working directory")
	f.StringVarP(&user, "user", "u", "", "UID[:GID]")
	f.BoolVarP(&detach, "detach", "d", false, "do not wait for the process")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pty")
	f.BoolVar(&noNewPrivs, "no-new-privs", false, "set no_new_privs")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE")
	f.StringArrayVarP(&caps, "cap", "c", nil, "add a capability")
	f.StringArrayVarP(&gids, "additional-gids", "g", nil, "additional group")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "pass this many extra descriptors (from 3)")
	f.StringVar(&ignored, "process-label", "", "accepted for compatibility")
	f.StringVar(&ignored, "apparmor", "", "accepted for compatibility")
	return cmd
}
