package runtime

import (
	"fmt"
	"os"
	"time"
)

// tracer prints how long each phase of a container's start took, when
// BERTH_RUNTIME_TRACE is set: the measurement behind bench/runtime.
type tracer struct {
	on   bool
	last time.Time
}

func newTracer() *tracer {
	_, on := os.LookupEnv("BERTH_RUNTIME_TRACE")
	return &tracer{on: on, last: time.Now()}
}

func (t *tracer) mark(what string) {
	if !t.on {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "trace: %-24s %6.2f ms  @%d\n", what, float64(now.Sub(t.last).Microseconds())/1000, now.UnixMicro()%1000000)
	t.last = now
}
