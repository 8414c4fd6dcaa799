// Package runtime owns berth's OCI runtime as a Go library: it turns an OCI
// bundle (a root filesystem and a config.json following the OCI runtime
// spec) into an isolated process, and drives it through the spec's
// lifecycle — Create, Start, State, Kill, Delete — plus Run, Exec, Pause,
// Resume, Processes and Stats.
//
// Each container has a state directory under Options.Root holding
// state.json, the spec as created (spec.json) and, between create and
// start, the exec FIFO that start writes to.
//
// The container's init comes to life in one of two ways. The fast path
// (package internal/forkinit) compiles the init into a list of system calls
// and clones a child of this process, sharing its memory on a stack of its
// own, that runs them and execs the container's process: no second Go
// runtime, no re-executed binary, nothing copied. On
// cgroup v2 the child is cloned into its cgroup (CLONE_INTO_CGROUP); on v1
// it mounts while the parent makes the cgroup, then moves itself in while
// the parent sets the cgroup's resources. What
// the fast path does not cover (user namespaces, terminals, hooks run in
// the container, exec) goes to package internal/initproc: this binary
// re-executed from a read-only mount of itself, in the new namespaces.
//
// Three environment variables are for people measuring or debugging:
// BERTH_RUNTIME_TRACE prints how long each step of a start took;
// BERTH_RUNTIME_REEXEC_INIT forces the re-executed init;
// BERTH_RUNTIME_PLAIN_FORK makes the fast path fork its child rather than
// share the runtime's memory with it (see package forkinit).
//
// The runc-compatible command line lives in package runtime/cli.
package runtime
