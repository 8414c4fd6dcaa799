// Package forkinit owns the container init's fast path: the init compiled,
// in the runtime's own process, into a list of system calls, which a
// forked child of the runtime runs before it execs the container's
// process. No second Go runtime starts, nothing is decoded, no binary is
// re-executed (and so there is no runtime binary for a container to
// overwrite through /proc/<pid>/exe): the child is as cheap as crun's.
//
// # How a Go program forks without exec
//
// After fork, only the forking thread exists in the child, and the Go
// runtime's state (its locks, its other threads) is a frozen copy: the
// child must not allocate, grow its stack, schedule, or take a signal. So
// the child runs one //go:nosplit function that reads the precompiled
// program — plain structs of uintptrs pointing into buffers the parent
// built and keeps alive — and makes raw system calls, exactly as the
// syscall package's own forkAndExecInChild does between fork and exec.
// The parent blocks every signal on the forking thread around the clone
// (the child inherits the mask and restores the original just before
// execve), and holds syscall.ForkLock.
//
// The child is a plain fork (not vfork: it lives until start), so its cost
// grows with the parent's private memory — page tables copied, pages
// copied on write until the child execs. For the CLI that is a few hundred
// kilobytes; an engine with a large heap pays a little more per start.
//
// Every op that can fail carries its index; a failing child writes the
// index, the errno and an exit code to the sync socket and exits, and the
// parent turns the index back into words ("mount proc on /proc: EPERM").
//
// The program covers what almost every container asks for. What it does
// not (user namespaces, joining a mount namespace, a terminal, hooks run
// inside the container), package initproc does, in a re-executed init;
// Supported says which to use.
package forkinit
