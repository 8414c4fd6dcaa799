// Package monitor owns the machinery of berth's container monitor: the one
// small process per run root that is the parent of every container's init,
// so that no CLI has to stay alive for a container to be watched.
//
// Why one shared monitor and not one per container (as Podman's conmon):
// a Go process costs about a megabyte of private memory, so a monitor per
// container would cost more than conmon does; one monitor shared by every
// container costs its memory once, a few kilobytes per container beyond
// that (two pipes, two log buffers, a goroutine or three). It is not a
// daemon to start or manage: the first berth command that needs it starts
// it, and it exits by itself once no container is running and no client is
// connected. It holds an flock on monitor.lock for as long as it lives, so
// at most one runs per run root and a dead one is detected at once.
//
// The state on disk stays the truth: if the monitor is killed, containers
// keep running (re-parented to init) and the next berth command that finds
// a recorded process gone records it as exited.
//
// This package provides the pieces; the engine provides what the monitor
// does with a container (package engine, monitor*.go):
//   - the wire protocol: one JSON request per connection, then, for
//     attached streams, frames in both directions (Frame*); `run` sends
//     a "prepare" request with the record of the container it is
//     creating, so that the monitor sets up its network meanwhile, then a
//     Go once the record is written and the root mounted;
//   - the client side: Dial starts the monitor when none runs;
//   - the reaper: a subreaper that waits for exactly the processes it is
//     told about, so that other children (hooks, external runtimes) are
//     left to their own waiters.
package monitor
