//go:build !race && !msan && !asan

#include "textflag.h"

#define SYS_clone3 435
#define SYS_exit_group 231

// func cloneVM(args *cloneArgs, size uintptr, ops []op, s *scratch, syncFD uintptr) (pid, errno uintptr)
//
// clone3 with the stack args gives. The parent returns the child's pid or
// the errno. The child never returns: it starts on that stack (the kernel
// sets SP to its top), calls runOps (through its ABI0 wrapper, which zeroes
// X15 and loads R14 from TLS, as ABIInternal code assumes), then exits.
// What runOps needs is in registers the system call preserves.
TEXT ·cloneVM(SB),NOSPLIT,$0-72
	MOVQ	ops_base+16(FP), BX
	MOVQ	ops_len+24(FP), R8
	MOVQ	ops_cap+32(FP), R9
	MOVQ	s+40(FP), R12
	MOVQ	syncFD+48(FP), R13
	MOVQ	args+0(FP), DI
	MOVQ	size+8(FP), SI
	MOVL	$SYS_clone3, AX
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	NEGQ	AX
	MOVQ	$0, pid+56(FP)
	MOVQ	AX, errno+64(FP)
	RET
ok:
	MOVQ	AX, pid+56(FP)
	MOVQ	$0, errno+64(FP)
	RET

child:
	// No frame to unwind through: BP pointed into the parent's goroutine
	// stack.
	XORL	BP, BP
	SUBQ	$48, SP
	MOVQ	BX, 0(SP)
	MOVQ	R8, 8(SP)
	MOVQ	R9, 16(SP)
	MOVQ	R12, 24(SP)
	MOVQ	R13, 32(SP)
	CALL	·runOps(SB)
exit:
	MOVL	$1, DI
	MOVL	$SYS_exit_group, AX
	SYSCALL
	JMP	exit
