package engine

import (
	"fmt"
	"os"
	"time"
)

// traceRuns is set by BERTH_TRACE in the environment of the command that
// starts the monitor: the monitor then writes to its log how long each step
// of a container's start and exit took (as BERTH_RUNTIME_TRACE does for the
// runtime's own steps). It is how bench's run row is taken apart.
var traceRuns = os.Getenv("BERTH_TRACE") != ""

// runTrace times the steps of one container's start or exit.
type runTrace struct {
	id   string
	last time.Time
}

// newRunTrace returns a trace for container id, or nil (whose marks do
// nothing) when tracing is off.
func newRunTrace(id string) *runTrace {
	if !traceRuns {
		return nil
	}
	return &runTrace{id: id, last: time.Now()}
}

func (t *runTrace) mark(step string) {
	if t == nil {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "run trace: %.12s %-22s %6.2f ms  @%d.%06d\n", t.id, step, float64(now.Sub(t.last).Microseconds())/1000, now.Unix(), now.Nanosecond()/1000)
	t.last = now
}
