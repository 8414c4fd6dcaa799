package logs

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCopyAndRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log.json")
	w, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 20000)
	w.Copy("stdout", strings.NewReader("one\ntwo\n"+long+"\nlast without newline"))
	w.Copy("stderr", strings.NewReader("err\n"))
	w.Close()

	var got []Entry
	err = Read(context.Background(), p, ReadOptions{Tail: -1}, func(e Entry) error { got = append(got, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, e := range got {
		if e.Stream == "stdout" {
			text.WriteString(e.Log)
		}
	}
	if text.String() != "one\ntwo\n"+long+"\nlast without newline" {
		t.Errorf("stdout round trip lost data (%d bytes)", text.Len())
	}
	if last := got[len(got)-1]; last.Stream != "stderr" || last.Log != "err\n" || last.Time.IsZero() {
		t.Errorf("last entry = %+v", last)
	}
	var tail []string
	Read(context.Background(), p, ReadOptions{Tail: 2}, func(e Entry) error { tail = append(tail, e.Log); return nil })
	if len(tail) != 2 || tail[1] != "err\n" {
		t.Errorf("tail 2 = %q", tail)
	}
	var none int
	Read(context.Background(), p, ReadOptions{Tail: -1, Since: time.Now().Add(time.Hour)}, func(Entry) error { none++; return nil })
	if none != 0 {
		t.Errorf("since the future: %d entries", none)
	}
}

func TestFollow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log.json")
	w, _ := Create(p)
	defer w.Close()
	w.Write(Entry{Log: "before\n", Stream: "stdout", Time: time.Now()})
	pr, pw := io.Pipe()
	go w.Copy("stdout", pr)
	done := make(chan struct{})
	got := make(chan string, 10)
	go func() {
		Read(context.Background(), p, ReadOptions{Tail: -1, Follow: true, Done: done}, func(e Entry) error {
			got <- e.Log
			return nil
		})
		close(got)
	}()
	if l := <-got; l != "before\n" {
		t.Fatalf("first = %q", l)
	}
	pw.Write([]byte("after\n"))
	if l := <-got; l != "after\n" {
		t.Fatalf("followed = %q", l)
	}
	close(done)
	for range got {
	}
}
