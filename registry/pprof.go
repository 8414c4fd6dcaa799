package registry

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
)

// PprofEnv names the environment variable that, set to a listen address,
// makes a serving registry also serve Go's profiles (/debug/pprof/) there.
// It is for measuring the registry (bench/registry uses it); the profiles
// are never on the registry's own address.
const PprofEnv = "BERTH_REGISTRY_PPROF"

func startPprof(log *slog.Logger) {
	addr := os.Getenv(PprofEnv)
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() {
		log.Info("registry profiles", "addr", addr)
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Warn("registry profiles", "err", err)
		}
	}()
}
