// Package forkinit owns the container init's fast path: the init compiled,
// in the runtime's own process, into a list of system calls, which a
// child of the runtime runs before it execs the container's process. No second Go runtime starts, nothing is decoded, no binary is
// re-executed (and so there is no runtime binary for a container to
// overwrite through /proc/<pid>/exe): the child is as cheap as crun's.
//
// # How a Go program forks without exec
//
// The child runs one //go:nosplit function, runOps, that reads the
// precompiled program — plain structs of uintptrs pointing into buffers
// the parent built — and makes raw system calls, as the syscall package's
// own forkAndExecInChild does between fork and exec. It never allocates,
// grows its stack, schedules, writes a pointer (no write barrier) or takes
// a signal: the parent blocks every signal on the cloning thread around
// the clone (the child inherits the mask and restores the original just
// before execve), and holds syscall.ForkLock.
//
// The child shares the parent's memory (clone3 with CLONE_VM, not
// CLONE_VFORK: the parent goes on while the child waits for start, which
// may be long). A fork would copy the parent's page tables, and then each
// page the parent's threads write while the child lives would be copied
// on a fault, with a TLB flush on every other CPU the parent runs on: for
// an engine with a heap of a few megabytes, a millisecond or two of CPU
// per container. Sharing costs none of it, and is safe because:
//
//   - The child runs on a stack of its own, which the parent allocates:
//     an assembly trampoline (clone_linux_amd64.s) makes the system call
//     and, in the child, calls runOps on that stack and exits. runOps and
//     everything it calls are nosplit (no stack check against the parent
//     goroutine's bounds); the ABI0 wrappers on the way zero X15 and load
//     R14 from the parent thread's TLS, which nothing dereferences. The
//     tests check the machine code for this.
//   - The child writes only its stack and its scratch (stat buffers, the
//     message it reports), which the parent does not touch while it runs.
//     Descriptors, the working directory and root, credentials,
//     namespaces, limits, umask and signal dispositions stay per process
//     (no CLONE_FILES, CLONE_FS, CLONE_SIGHAND or CLONE_THREAD), and
//     CLONE_CLEAR_SIGHAND leaves the Go runtime's handlers out of the
//     child: a signal it could still get (a fault) takes the default
//     action instead of running Go code on its stack.
//   - What it reads and writes stays allocated until it has exec'd or
//     exited, whatever becomes of the program (the engine drops it while
//     the child waits for start through the exec FIFO): a lease holds it,
//     and lets go when a pipe whose write end only the child holds hangs
//     up, which the kernel does only after the child has left the shared
//     memory (see lease, in child_unsafe_linux.go).
//
// Per process, except for what the kernel keeps with the memory: a child
// that sets its oom_score_adj would set the parent's too, so such a child
// is forked; so is one in a new time namespace (before Linux 6.0 a child
// sharing memory did not enter it). A child that changes its user or group
// makes the memory, and so the parent, not dumpable (no core dump), as Go's
// own ForkExec with a Credential does. And the OOM killer kills every
// process that shares its victim's memory: were the container's memory
// cgroup to run out before its init has exec'd (a limit below what the
// init's mounts take), the parent would go with it. Elsewhere the child is
// a plain fork of the parent, that pays for the parent's memory as above:
// on other architectures than amd64, under the race detector or a
// sanitizer (whose hooks need a goroutine), where the kernel refuses the
// clone (before 5.5), and with BERTH_RUNTIME_PLAIN_FORK set in the
// environment, to compare the two.
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
