package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/network"
)

// createFlags are the flags `run` and `create` share.
type createFlags struct {
	name, workdir, user, entrypoint, hostname, network, runtime, restart string
	memory, memorySwap, memoryReservation, cpus, cpusetCpus, stopSignal  string
	env, envFile, labels, volumes, mounts, tmpfs, capAdd, capDrop        []string
	securityOpt, ulimits, sysctls, devices, dns, dnsSearch, addHosts     []string
	publish, expose, aliases                                             []string
	ip, mac                                                              string
	interactive, tty, rm, readOnly, privileged, init, publishAll         bool
	cpuShares, pidsLimit                                                 int64
	stopTimeout                                                          int
}

func (f *createFlags) register(fl *pflag.FlagSet) {
	fl.SetInterspersed(false)
	fl.Bool("help", false, "Print usage") // -h is --hostname, as in docker
	fl.StringVar(&f.name, "name", "", "Assign a name to the container")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "Container host name")
	fl.StringVar(&f.network, "network", "", "Connect a container to a network (none, host, bridge, container:<name|id>)")
	fl.StringVar(&f.network, "net", "", "Connect a container to a network")
	fl.MarkHidden("net")
	fl.StringVar(&f.runtime, "runtime", "", "Runtime to use for this container (berth, crun, runc or a path)")
	fl.StringVar(&f.restart, "restart", "no", "Restart policy to apply when a container exits")
	fl.StringVarP(&f.memory, "memory", "m", "", "Memory limit")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fl.StringVar(&f.memoryReservation, "memory-reservation", "", "Memory soft limit")
	fl.StringVar(&f.cpus, "cpus", "", "Number of CPUs")
	fl.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "Signal to stop the container")
	fl.IntVar(&f.stopTimeout, "stop-timeout", -2, "Timeout (in seconds) to stop a container")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&f.envFile, "env-file", nil, "Read in a file of environment variables")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "Set meta data on a container")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "Bind mount a volume")
	fl.StringArrayVar(&f.mounts, "mount", nil, "Attach a filesystem mount to the container")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "Add Linux capabilities")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	fl.StringArrayVar(&f.securityOpt, "security-opt", nil, "Security Options")
	fl.StringArrayVar(&f.ulimits, "ulimit", nil, "Ulimit options")
	fl.StringArrayVar(&f.sysctls, "sysctl", nil, "Sysctl options")
	fl.StringArrayVar(&f.devices, "device", nil, "Add a host device to the container")
	fl.StringArrayVar(&f.dns, "dns", nil, "Set custom DNS servers")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	fl.StringArrayVar(&f.expose, "expose", nil, "Expose a port or a range of ports")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fl.StringArrayVar(&f.aliases, "network-alias", nil, "Add network-scoped alias for the container")
	fl.StringVar(&f.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fl.StringVar(&f.mac, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&f.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVar(&f.rm, "rm", false, "Automatically remove the container when it exits")
	fl.BoolVar(&f.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fl.BoolVar(&f.privileged, "privileged", false, "Give extended privileges to this container")
	fl.BoolVar(&f.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
}

// options turns the flags and the positional IMAGE [COMMAND] [ARG...] into
// the engine's CreateOptions, rejecting bad values before anything is made.
func (f *createFlags) options(fl *pflag.FlagSet, args []string) (engine.CreateOptions, error) {
	o := engine.CreateOptions{Name: f.name, Image: args[0], Cmd: args[1:]}
	cfg := &o.Config
	hc := &o.HostConfig
	if fl.Changed("entrypoint") {
		o.Entrypoint = &f.entrypoint
	}
	cfg.WorkingDir, cfg.User, cfg.Hostname = f.workdir, f.user, f.hostname
	cfg.Tty, cfg.OpenStdin, cfg.StdinOnce = f.tty, f.interactive, f.interactive
	cfg.StopSignal = f.stopSignal
	if f.stopSignal != "" {
		if _, err := engine.ParseSignal(f.stopSignal, 0); err != nil {
			return o, err
		}
	}
	if fl.Changed("stop-timeout") {
		cfg.StopTimeout = &f.stopTimeout
	}
	for _, file := range f.envFile {
		env, err := readEnvFile(file)
		if err != nil {
			return o, err
		}
		cfg.Env = append(cfg.Env, env...)
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			if v, ok := os.LookupEnv(e); ok {
				e += "=" + v
			} else {
				continue
			}
		}
		cfg.Env = append(cfg.Env, e)
	}
	cfg.Labels = map[string]string{}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	hc.Binds = f.volumes
	for _, m := range f.mounts {
		mnt, err := engine.ParseMountFlag(m)
		if err != nil {
			return o, err
		}
		hc.Mounts = append(hc.Mounts, mnt)
	}
	for _, t := range f.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[dst] = opts
	}
	hc.NetworkMode = f.network
	hc.Runtime = f.runtime
	hc.AutoRemove, hc.ReadonlyRootfs, hc.Privileged = f.rm, f.readOnly, f.privileged
	if f.init {
		hc.Init = &f.init
	}
	hc.CapAdd, hc.CapDrop, hc.SecurityOpt = f.capAdd, f.capDrop, f.securityOpt
	hc.Dns, hc.DnsSearch, hc.ExtraHosts = f.dns, f.dnsSearch, f.addHosts
	for _, so := range f.securityOpt {
		k, v, _ := strings.Cut(so, "=")
		switch {
		case so == "no-new-privileges" || so == "no-new-privileges:true" || so == "no-new-privileges=true":
		case so == "no-new-privileges=false" || so == "no-new-privileges:false":
		case k == "seccomp" && v != "":
		case k == "label" || k == "apparmor":
		default:
			return o, errdefs.InvalidArgument("invalid --security-opt: %q", so)
		}
	}
	name, count, _ := strings.Cut(f.restart, ":")
	hc.RestartPolicy.Name = name
	if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil {
			return o, errdefs.InvalidArgument("invalid restart policy format: maximum retry count must be an integer")
		}
		hc.RestartPolicy.MaximumRetryCount = n
	}
	var err error
	if hc.Memory, err = ramFlag("memory", f.memory); err != nil {
		return o, err
	}
	if hc.MemoryReservation, err = ramFlag("memory-reservation", f.memoryReservation); err != nil {
		return o, err
	}
	if f.memorySwap == "-1" {
		hc.MemorySwap = -1
	} else if hc.MemorySwap, err = ramFlag("memory-swap", f.memorySwap); err != nil {
		return o, err
	}
	if f.cpus != "" {
		v, err := strconv.ParseFloat(f.cpus, 64)
		if err != nil || v < 0 {
			return o, errdefs.InvalidArgument("invalid argument %q for \"--cpus\" flag: failed to parse %s as a rational number", f.cpus, f.cpus)
		}
		hc.NanoCpus = int64(v * 1e9)
	}
	hc.CpuShares, hc.CpusetCpus = f.cpuShares, f.cpusetCpus
	if fl.Changed("pids-limit") {
		hc.PidsLimit = &f.pidsLimit
	}
	for _, u := range f.ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return o, errdefs.InvalidArgument("invalid argument %q for \"--ulimit\" flag: %v", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, container.Ulimit{Name: ul.Name, Soft: ul.Soft, Hard: ul.Hard})
	}
	for _, s := range f.sysctls {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return o, errdefs.InvalidArgument("invalid argument %q for \"--sysctl\" flag: sysctl must be key=value", s)
		}
		if hc.Sysctls == nil {
			hc.Sysctls = map[string]string{}
		}
		hc.Sysctls[k] = v
	}
	for _, d := range f.devices {
		parts := strings.Split(d, ":")
		dm := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
		if len(parts) > 1 {
			dm.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			dm.CgroupPermissions = parts[2]
		}
		hc.Devices = append(hc.Devices, dm)
	}
	for _, p := range f.expose {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	if _, err := network.ParsePorts(f.publish); err != nil {
		return o, err
	}
	o.Publish, hc.PublishAllPorts = f.publish, f.publishAll
	o.Aliases, o.IP, o.MAC = f.aliases, f.ip, f.mac
	return o, nil
}

func ramFlag(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(v)
	if err != nil {
		return 0, errdefs.InvalidArgument("invalid argument %q for \"--%s\" flag: invalid size: '%s'", v, name, v)
	}
	return n, nil
}

func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errdefs.InvalidArgument("open %s: no such file or directory", path)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !strings.Contains(l, "=") {
			if v, ok := os.LookupEnv(l); ok {
				l += "=" + v
			} else {
				continue
			}
		}
		env = append(env, l)
	}
	return env, sc.Err()
}

func newCreateCmd(a *App, use string) *cobra.Command {
	var f createFlags
	c := &cobra.Command{
		Use:   use + " [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd.Flags(), args)
			if err != nil {
				return err
			}
			e, err := a.Engine(cmd.Context())
			if err != nil {
				return err
			}
			c, err := e.CreateContainer(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.Out, c.ID)
			return nil
		},
	}
	f.register(c.Flags())
	return c
}

func newRunCmd(a *App) *cobra.Command {
	var f createFlags
	var detach bool
	c := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd.Flags(), args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := a.Engine(ctx)
			if err != nil {
				return err
			}
			// The root is mounted while the record is written: the start
			// follows at once.
			opts.MountRoot = true
			c, err := e.CreateContainer(ctx, opts)
			if err != nil {
				return err
			}
			// A container that never ran is removed with --rm, as Docker does.
			autoRemove := func(err error) error {
				if opts.HostConfig.AutoRemove {
					e.RemoveContainer(context.WithoutCancel(ctx), c.ID, engine.RemoveOptions{Force: true, Volumes: true})
				}
				return err
			}
			if detach {
				if _, err := e.StartCreated(ctx, c, nil); err != nil {
					return autoRemove(err)
				}
				fmt.Fprintln(a.Out, c.ID)
				return nil
			}
			streams, restore := a.attachStreams(f.interactive, f.tty)
			defer restore()
			code, err := e.StartCreated(ctx, c, streams)
			if err != nil {
				return autoRemove(err)
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&detach, "detach", "d", false, "Run container in background and print container ID")
	f.register(c.Flags())
	return c
}

// attachStreams wires the CLI's stdio to an attached container: signals
// are forwarded (Ctrl-C stops the container, as with docker), and with a
// terminal the CLI's own goes raw and its size follows the window. The
// returned function restores the terminal.
func (a *App) attachStreams(stdin, tty bool) (*engine.Streams, func()) {
	sigs := make(chan os.Signal, 8)
	s := &engine.Streams{Stdout: a.Out, Stderr: a.Err, Signals: sigs}
	if stdin {
		s.Stdin = a.In
	}
	restore := func() { signal.Stop(sigs) }
	in, isFile := a.In.(*os.File)
	if !tty || !isFile || !term.IsTerminal(int(in.Fd())) {
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
		return s, restore
	}
	// In raw mode Ctrl-C is a byte for the container's terminal, not a
	// signal; only outside signals are forwarded.
	signal.Notify(sigs, unix.SIGTERM, unix.SIGHUP)
	old, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return s, restore
	}
	resize := make(chan [2]uint16, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	send := func() {
		if ws, err := unix.IoctlGetWinsize(int(in.Fd()), unix.TIOCGWINSZ); err == nil {
			select {
			case resize <- [2]uint16{ws.Row, ws.Col}:
			default:
			}
		}
	}
	send()
	go func() {
		for range winch {
			send()
		}
	}()
	s.Resize = resize
	return s, func() {
		signal.Stop(winch)
		signal.Stop(sigs)
		term.Restore(int(in.Fd()), old)
	}
}
