//go:build linux && (!amd64 || race || msan || asan)

package forkinit

// canShare: no cloneVM on this architecture, or under the race detector
// or a sanitizer (whose calls in ABI wrappers and instrumented code need a
// goroutine): the child is a plain fork.
const canShare = false

func cloneVM(args *cloneArgs, size uintptr, ops []op, s *scratch, syncFD uintptr) (pid, errno uintptr) {
	panic("forkinit: no cloneVM here")
}
