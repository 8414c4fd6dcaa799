package seccomp

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/moby/profiles/seccomp"
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
		case ja:
			pc += int(in.K)
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

// reference is what a profile says of a call: the action of the first rule
// that names it and whose conditions hold (rules whose action is the
// default and that have no conditions are left out, as runc does), else
// the default.
func reference(t *testing.T, s *specs.LinuxSeccomp, nr uint32, args [6]uint64) uint32 {
	t.Helper()
	def, _ := action(s.DefaultAction, s.DefaultErrnoRet)
	for _, r := range s.Syscalls {
		act, err := action(r.Action, r.ErrnoRet)
		if err != nil {
			t.Fatal(err)
		}
		if act == def && len(r.Args) == 0 {
			continue
		}
		for _, name := range r.Names {
			if n, ok := SyscallNumber(name); !ok || n != nr {
				continue
			}
			match := true
			for _, c := range r.Args {
				v := args[c.Index]
				switch c.Op {
				case specs.OpEqualTo:
					match = match && v == c.Value
				case specs.OpNotEqual:
					match = match && v != c.Value
				case specs.OpMaskedEqual:
					match = match && v&c.Value == c.ValueTwo
				case specs.OpGreaterThan:
					match = match && v > c.Value
				case specs.OpGreaterEqual:
					match = match && v >= c.Value
				case specs.OpLessThan:
					match = match && v < c.Value
				case specs.OpLessEqual:
					match = match && v <= c.Value
				}
			}
			if match {
				return act
			}
		}
	}
	return def
}

// TestCompileMatchesProfile checks the compiled tree against the rules read
// one after another, for every call number, on Docker's default profile (a
// few hundred calls, several rules with conditions on the same call) and on
// a profile whose rules pile up on one call.
func TestCompileMatchesProfile(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the syscall table is x86-64's")
	}
	docker, err := seccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_SYS_ADMIN"}}}})
	if err != nil {
		t.Fatal(err)
	}
	errno := uint(38)
	piled := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for i := uint64(0); i < 80; i++ {
		piled.Syscalls = append(piled.Syscalls, specs.LinuxSyscall{
			Names: []string{"ioctl", "read"}, Action: specs.ActErrno, ErrnoRet: &errno,
			Args: []specs.LinuxSeccompArg{{Index: 1, Value: i, Op: specs.OpEqualTo}},
		})
	}
	piled.Syscalls = append(piled.Syscalls,
		specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActKillProcess},
		specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActTrap},
		specs.LinuxSyscall{Names: []string{"write"}, Action: specs.ActAllow})
	for name, s := range map[string]*specs.LinuxSeccomp{"docker": docker, "piled": piled} {
		p, err := Compile(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The argument values the rules compare with, and their neighbours,
		// for the calls that have conditions.
		vals := map[uint32][]uint64{}
		for _, r := range s.Syscalls {
			for _, name := range r.Names {
				nr, ok := SyscallNumber(name)
				if !ok {
					continue
				}
				for _, c := range r.Args {
					for _, v := range []uint64{c.Value, c.ValueTwo} {
						vals[nr] = append(vals[nr], v, v-1, v+1, v|1<<32, v^1<<40)
					}
				}
			}
		}
		for nr := uint32(0); nr < 500; nr++ {
			for _, v := range append([]uint64{0, 1<<64 - 1}, vals[nr]...) {
				for i := 0; i < 6; i++ {
					var args [6]uint64
					args[i] = v
					want := reference(t, s, nr, args)
					if got := exec(t, p.Insns, auditArchX86_64, nr, args); got != want {
						t.Fatalf("%s: call %d args %v: %#x, want %#x", name, nr, args, got, want)
					}
				}
			}
		}
		t.Logf("%s: %d instructions", name, len(p.Insns))
	}
}
