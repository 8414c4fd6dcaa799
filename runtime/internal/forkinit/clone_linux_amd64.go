//go:build !race && !msan && !asan

package forkinit

// canShare: this architecture has cloneVM.
const canShare = true

// cloneVM clones a child that shares this process's memory and runs ops
// on the stack args names (clone_linux_amd64.s). It returns the child's
// pid, or an errno, in the parent; it never returns in the child.
//
//go:noescape
func cloneVM(args *cloneArgs, size uintptr, ops []op, s *scratch, syncFD uintptr) (pid, errno uintptr)
