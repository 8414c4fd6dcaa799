package imagetools

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/cli"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/registry"
)

// newRegistryCmd is `berth registry`: berth's own OCI registry.
func newRegistryCmd(a *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry COMMAND",
		Short: "Run berth's own OCI distribution registry",
		Args:  cli.NoArgs,
	}
	cmd.AddCommand(newRegistryServeCmd(a), newRegistryGCCmd(a))
	return cmd
}

// registryFlags are the flags shared by the registry subcommands; set flags
// override the config file.
type registryFlags struct {
	config, addr, root, cert, key, htpasswd string
	crossMount                              string
	readOnly, accessLog                     bool
	gcInterval, gcGrace                     time.Duration
	maxManifest, maxBody                    int64
	proxies                                 []string
	proxyTTL                                time.Duration
}

func (f *registryFlags) load(cmd *cobra.Command, a *cli.App) (registry.Config, error) {
	var cfg registry.Config
	if f.config != "" {
		c, err := registry.LoadConfig(f.config)
		if err != nil {
			return cfg, err
		}
		cfg = c
	}
	fl := cmd.Flags()
	set := func(name string, apply func()) {
		if fl.Changed(name) {
			apply()
		}
	}
	set("addr", func() { cfg.Addr = f.addr })
	set("root", func() { cfg.Root = f.root })
	set("tls-cert", func() { cfg.TLS.Cert = f.cert })
	set("tls-key", func() { cfg.TLS.Key = f.key })
	set("htpasswd", func() { cfg.Auth.Htpasswd = f.htpasswd })
	set("read-only", func() { cfg.ReadOnly = f.readOnly })
	set("cross-mount", func() { cfg.CrossMount = f.crossMount })
	set("access-log", func() { cfg.AccessLog = f.accessLog })
	set("gc-interval", func() { cfg.GC.Interval = registry.Duration(f.gcInterval) })
	set("gc-grace", func() { cfg.GC.Grace = registry.Duration(f.gcGrace) })
	set("max-manifest-size", func() { cfg.Limits.ManifestSize = f.maxManifest })
	set("max-body-size", func() { cfg.Limits.BodySize = f.maxBody })
	for _, p := range f.proxies {
		prefix, url, ok := strings.Cut(p, "=")
		if !ok || prefix == "" || url == "" {
			return cfg, errdefs.InvalidArgument("--proxy %q: want PREFIX=URL", p)
		}
		pc := registry.ProxyConfig{Prefix: prefix, URL: url}
		// A flag replaces the config file's upstream of the same prefix.
		cfg.Proxies = slices.DeleteFunc(cfg.Proxies, func(c registry.ProxyConfig) bool { return c.Prefix == prefix })
		cfg.Proxies = append(cfg.Proxies, pc)
	}
	if fl.Changed("proxy-tag-ttl") {
		for i := range cfg.Proxies {
			cfg.Proxies[i].TagTTL = registry.Duration(f.proxyTTL)
		}
	}
	if cfg.Root == "" {
		cfg.Root = filepath.Join(a.Root(), "registry")
	}
	return cfg, nil
}

func (f *registryFlags) register(cmd *cobra.Command, serve bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "Config file (JSON, see registry/README.md); flags override it")
	fl.StringVar(&f.root, "root", "", "Storage directory (default <data root>/registry)")
	fl.DurationVar(&f.gcGrace, "gc-grace", time.Hour, "Garbage collection keeps anything younger than this")
	if !serve {
		return
	}
	fl.StringVarP(&f.addr, "addr", "a", registry.DefaultAddr, "Listen address")
	fl.StringVar(&f.cert, "tls-cert", "", "TLS certificate file (PEM); serve HTTPS with --tls-key")
	fl.StringVar(&f.key, "tls-key", "", "TLS private key file (PEM)")
	fl.StringVar(&f.htpasswd, "htpasswd", "", "htpasswd file (bcrypt) for basic authentication")
	fl.BoolVar(&f.readOnly, "read-only", false, "Refuse pushes and deletes")
	fl.StringVar(&f.crossMount, "cross-mount", "auto", "Cross-repository blob mounts: auto (with from, and without from when open), from (only with from), off (never: clients upload)")
	fl.BoolVar(&f.accessLog, "access-log", false, "Log every request")
	fl.DurationVar(&f.gcInterval, "gc-interval", 0, "Collect garbage this often while serving (0: never)")
	fl.Int64Var(&f.maxManifest, "max-manifest-size", 4<<20, "Largest manifest accepted, in bytes")
	fl.Int64Var(&f.maxBody, "max-body-size", 0, "Largest request body accepted, in bytes (0: no limit)")
	fl.StringArrayVar(&f.proxies, "proxy", nil, "Serve PREFIX/<repo> as a pull-through cache of URL's <repo> (PREFIX=URL, repeatable)")
	fl.DurationVar(&f.proxyTTL, "proxy-tag-ttl", 0, "Serve a cached tag this long before asking its upstream again (default 1m)")
}

func newRegistryServeCmd(a *cli.App) *cobra.Command {
	var f registryFlags
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve the OCI distribution API until interrupted",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd, a)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("log-level") {
				// A server reports that it listens and stops.
				slog.SetDefault(slog.New(slog.NewTextHandler(a.Err, &slog.HandlerOptions{Level: slog.LevelInfo})))
			}
			r, err := registry.New(cfg, slog.Default())
			if err != nil {
				return err
			}
			return r.Serve(cmd.Context(), nil)
		},
	}
	f.register(cmd, true)
	return cmd
}

func newRegistryGCCmd(a *cli.App) *cobra.Command {
	var f registryFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc [OPTIONS]",
		Short: "Remove unreferenced blobs and untagged manifests (safe while the registry serves)",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd, a)
			if err != nil {
				return err
			}
			rep, err := registry.GC(cmd.Context(), cfg, dryRun)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.Out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return fmt.Errorf("registry gc: %w", err)
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "Report what would be removed, remove nothing")
	return cmd
}
