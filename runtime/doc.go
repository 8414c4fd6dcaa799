// Package runtime owns berth's OCI runtime as a Go library: it turns an OCI
// bundle (a root filesystem and a config.json following the OCI runtime
// spec) into an isolated process, and drives it through the spec's
// lifecycle — Create, Start, State, Kill, Delete — plus Run, Exec, Pause,
// Resume, Processes and Stats.
//
// Each container has a state directory under Options.Root holding
// state.json and, between create and start, the exec FIFO that start
// writes to. The container's init process (package internal/initproc) is
// this same binary re-executed from a read-only detached mount of itself,
// cloned with clone3 straight into the container's namespaces and, on
// cgroup v2, into its cgroup (CLONE_INTO_CGROUP).
//
// The runc-compatible command line lives in package runtime/cli.
package runtime
