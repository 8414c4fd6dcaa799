package network

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkAttachRelease is a bridge container's network work on its start
// and exit path, as the engine does it: Attach with one published port to
// a fresh namespace, then Release and the namespace's unmount. The
// network's bridge exists (made by a first, untimed round). Reported:
// attach-ms and release-ms (with the unmount), per round.
//
//	go test -run '^$' -bench AttachRelease -benchtime 50x ./network/
func BenchmarkAttachRelease(b *testing.B) {
	m := testManager(b)
	ctx := testCtx(b)
	ports, _ := ParsePorts([]string{"127.0.0.1::80"})
	dir := b.TempDir()
	round := func() (attach, release time.Duration) {
		id := "bench" + randHex(29)
		ns := filepath.Join(dir, id)
		if err := newTestNetns(ns); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := m.Attach(ctx, id, ns, AttachRequest{Ports: ports}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Release(ctx, id); err != nil {
			b.Fatal(err)
		}
		unix.Unmount(ns, unix.MNT_DETACH)
		os.Remove(ns)
		return t1.Sub(t0), time.Since(t1)
	}
	round()
	var att, rel time.Duration
	b.ResetTimer()
	for range b.N {
		a, r := round()
		att += a
		rel += r
	}
	b.ReportMetric(float64(att.Microseconds())/1000/float64(b.N), "attach-ms")
	b.ReportMetric(float64(rel.Microseconds())/1000/float64(b.N), "release-ms")
}

// BenchmarkAttachReleaseSandbox is BenchmarkAttachRelease with the
// namespace and veth made ahead (untimed), as the monitor's pool does:
// Attach configures the sandbox, mounted as the engine mounts it.
//
//	go test -run '^$' -bench AttachReleaseSandbox -benchtime 50x ./network/
func BenchmarkAttachReleaseSandbox(b *testing.B) {
	m := testManager(b)
	ctx := testCtx(b)
	ports, _ := ParsePorts([]string{"127.0.0.1::80"})
	dir := b.TempDir()
	round := func() (attach, release time.Duration) {
		id := "bench" + randHex(29)
		ns := filepath.Join(dir, id)
		s, err := NewSandbox()
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		t0 := time.Now()
		if err := s.Mount(ns); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Attach(ctx, id, ns, AttachRequest{Ports: ports, Sandbox: s}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.Release(ctx, id); err != nil {
			b.Fatal(err)
		}
		unix.Unmount(ns, unix.MNT_DETACH)
		os.Remove(ns)
		return t1.Sub(t0), time.Since(t1)
	}
	round()
	var att, rel time.Duration
	b.ResetTimer()
	for range b.N {
		a, r := round()
		att += a
		rel += r
	}
	b.ReportMetric(float64(att.Microseconds())/1000/float64(b.N), "attach-ms")
	b.ReportMetric(float64(rel.Microseconds())/1000/float64(b.N), "release-ms")
}

// newTestNetns makes a network namespace bind-mounted at path, as the
// engine does: the thread that unshares it goes back to the process's
// namespace before it is unlocked.
func newTestNetns(path string) error {
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			errc <- fmt.Errorf("setns back: %w", serr) // the thread stays locked and ends
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}
