package registry

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// PprofEnv names the environment variable that, set to a listen address,
// makes a serving registry also serve Go's profiles (/debug/pprof/) there.
// It is for measuring the registry (bench/registry uses it); the profiles
// are never on the registry's own address.
//
// The handlers are runtime/pprof's profiles served directly, as
// net/http/pprof serves them (profile?seconds=N, trace?seconds=N and the
// named profiles: heap, goroutine, allocs, ...), without linking
// net/http/pprof into every berth command: its package init (and html's)
// ran on each start.
const PprofEnv = "BERTH_REGISTRY_PPROF"

func startPprof(log *slog.Logger) {
	addr := os.Getenv(PprofEnv)
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", servePprof)
	go func() {
		log.Info("registry profiles", "addr", addr)
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Warn("registry profiles", "err", err)
		}
	}()
}

// servePprof serves one profile: CPU ("profile") or an execution trace
// ("trace") for ?seconds= (30 by default), or a named profile.
func servePprof(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
	secs, err := strconv.Atoi(r.URL.Query().Get("seconds"))
	if err != nil || secs <= 0 {
		secs = 30
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	switch name {
	case "profile", "trace":
		start, stop := pprof.StartCPUProfile, pprof.StopCPUProfile
		if name == "trace" {
			start, stop = trace.Start, trace.Stop
		}
		if err := start(w); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		select {
		case <-time.After(time.Duration(secs) * time.Second):
		case <-r.Context().Done():
		}
		stop()
	default:
		p := pprof.Lookup(name)
		if p == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, "unknown profile %q\n", name)
			return
		}
		debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
		p.WriteTo(w, debug)
	}
}
