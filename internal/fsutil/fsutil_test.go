package fsutil

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, s := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != s {
			t.Fatalf("read %q, %v; want %q", b, err, s)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

// Counters incremented under the lock from many goroutines (each with its
// own open file description, as separate processes would have) lose nothing.
func TestLockSerializes(t *testing.T) {
	dir := t.TempDir()
	lock, counter := filepath.Join(dir, "lock"), filepath.Join(dir, "n")
	os.WriteFile(counter, []byte("0"), 0o644)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := LockFile(lock)
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Unlock()
			b, _ := os.ReadFile(counter)
			n, _ := strconv.Atoi(string(b))
			WriteFileAtomic(counter, []byte(strconv.Itoa(n+1)), 0o644)
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(counter)
	if string(b) != "20" {
		t.Fatalf("counter = %s, want 20", b)
	}
}
