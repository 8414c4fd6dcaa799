// Package initproc owns the container's init process: the code that runs
// inside the new namespaces between clone and the execve of the user's
// program. It sets up the root filesystem (mounts, devices, pivot_root,
// masked and read-only paths), the hostname and sysctls, the console, then
// the process's identity and confinement (rlimits, user and groups,
// capabilities, no_new_privs, seccomp), waits for the start signal and execs.
//
// # How the init comes to life
//
// This is the init for what the fast path (package forkinit) does not do:
// user namespaces, a terminal, hooks run in the container, and exec into a
// running container. The runtime re-executes its own binary, from a read-only detached mount of
// itself, with the environment variable named by EnvInit set. This package's
// init function sees it and runs the container init from there, before the
// main package — and before the package initialisation of most of the
// binary's other dependencies — ever runs, and never returns: it ends in
// execve or exit. Go initialises packages in import-path order among those
// whose imports are ready, so the heavy packages of the calling program (the
// CLI, cgroups, the engine) whose paths sort after this one or which import
// it are never initialised in the init process. That is why this package
// must stay small: depcheck_test.go lists what it may import.
//
// The parent speaks to the init over a stream socket (JSON messages, see
// Config and Message) and, for create, over a FIFO that start writes to.
package initproc
