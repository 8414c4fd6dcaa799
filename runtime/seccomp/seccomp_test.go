package seccomp

import (
	"encoding/binary"
	"runtime"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// exec runs prog on a seccomp_data the way the kernel's classic BPF
// interpreter does, for the instructions Compile emits.
func exec(t *testing.T, prog []Insn, arch, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.NativeEndian.PutUint32(data[0:], nr)
	binary.NativeEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.NativeEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case ldAbsW:
			acc = binary.NativeEndian.Uint32(data[in.K:])
		case andK:
			acc &= in.K
		case jeqK, jgtK, jgeK:
			var ok bool
			switch in.Code {
			case jeqK:
				ok = acc == in.K
			case jgtK:
				ok = acc > in.K
			default:
				ok = acc >= in.K
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case retK:
			return in.K
		default:
			t.Fatalf("unknown opcode %#x", in.Code)
		}
	}
	t.Fatal("program fell off its end")
	return 0
}

func TestCompile(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the syscall table is x86-64's")
	}
	errno := uint(13)
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 40, Op: specs.OpNotEqual}}},
			{Names: []string{"lseek"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 1 << 32, Op: specs.OpGreaterEqual}}},
			{Names: []string{"mmap"}, Action: specs.ActErrno, ErrnoRet: &errno, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 5, Op: specs.OpLessThan}}},
			{Names: []string{"no_such_call"}, Action: specs.ActAllow},
		},
	}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	nr := func(n string) uint32 { v, _ := SyscallNumber(n); return v }
	eperm := uint32(retErrno | 1)
	for _, tc := range []struct {
		name string
		arch uint32
		call string
		args [6]uint64
		want uint32
	}{
		{"allowed", auditArchX86_64, "read", [6]uint64{}, retAllow},
		{"default", auditArchX86_64, "mount", [6]uint64{}, eperm},
		{"other arch", 0x40000003, "read", [6]uint64{}, eperm},
		{"eq match", auditArchX86_64, "personality", [6]uint64{8}, retAllow},
		{"eq high word differs", auditArchX86_64, "personality", [6]uint64{8 | 1<<32}, eperm},
		{"masked eq match", auditArchX86_64, "clone", [6]uint64{0x11}, retAllow},
		{"masked eq no match", auditArchX86_64, "clone", [6]uint64{0x10000000}, eperm},
		{"ne match", auditArchX86_64, "socket", [6]uint64{2}, retAllow},
		{"ne no match", auditArchX86_64, "socket", [6]uint64{40}, eperm},
		{"ge high word", auditArchX86_64, "lseek", [6]uint64{0, 1 << 32}, retKillProcess},
		{"ge below", auditArchX86_64, "lseek", [6]uint64{0, 1<<32 - 1}, eperm},
		{"lt match", auditArchX86_64, "mmap", [6]uint64{0, 0, 4}, retErrno | 13},
		{"lt no match", auditArchX86_64, "mmap", [6]uint64{0, 0, 5}, eperm},
		{"lt high word", auditArchX86_64, "mmap", [6]uint64{0, 0, 1 << 32}, eperm},
	} {
		if got := exec(t, p.Insns, tc.arch, nr(tc.call), tc.args); got != tc.want {
			t.Errorf("%s: %s(%v) = %#x, want %#x", tc.name, tc.call, tc.args, got, tc.want)
		}
	}
	if got := exec(t, p.Insns, auditArchX86_64, 0x40000000|nr("read"), [6]uint64{}); got != eperm {
		t.Errorf("x32 call: %#x, want the default action", got)
	}
	if len(p.Bytes()) != 8*len(p.Insns) {
		t.Error("Bytes length")
	}
}

func TestCompileRefuses(t *testing.T) {
	for _, s := range []*specs.LinuxSeccomp{
		{DefaultAction: "SCMP_ACT_BOGUS"},
		{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
		{DefaultAction: specs.ActAllow, ListenerPath: "/run/x.sock"},
	} {
		if _, err := Compile(s); err == nil {
			t.Errorf("Compile(%+v) succeeded", s)
		}
	}
}
