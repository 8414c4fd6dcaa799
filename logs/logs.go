// Package logs owns container logs: the writer the monitor feeds a
// container's stdout and stderr through, and the reader behind `logs`
// (tail, since, until, follow). The format is Docker's json-file: one JSON
// object per line, {"log":"...","stream":"stdout","time":"..."}, so a line
// carries its stream and the time it was read.
package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Entry is one line of output.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Writer appends entries to a log file. It is safe for concurrent use by
// the goroutines copying a container's stdout and stderr.
type Writer struct {
	mu sync.Mutex
	f  *os.File
}

// Create opens (creating, appending) the log file at path.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &Writer{f: f}, nil
}

// Write logs one entry.
func (w *Writer) Write(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.f.Write(b)
	return err
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

// Copy logs what it reads from r on stream, a line per entry (a line
// longer than the 8 KiB buffer is split), until r ends.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 8<<10)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if werr := w.Write(Entry{Log: string(chunk), Stream: stream, Time: time.Now().UTC()}); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil || err == bufio.ErrBufferFull:
		case errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed):
			return nil
		default:
			return err
		}
	}
}

// ReadOptions select what Read returns.
type ReadOptions struct {
	Tail   int // the last N entries; < 0 for all
	Since  time.Time
	Until  time.Time
	Follow bool
	// Done, when following, ends the follow once it is closed and the
	// file has been read to its end (the container has exited).
	Done <-chan struct{}
}

// Read calls fn for each entry of the log at path that opts selects, in
// order. Following, it waits for new entries (inotify, no polling) until
// ctx ends or opts.Done closes.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	keep := func(e Entry) bool {
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return false
		}
		if !opts.Until.IsZero() && e.Time.After(opts.Until) {
			return false
		}
		return true
	}
	br := bufio.NewReader(f)
	var entries []Entry
	var partial []byte
	readAvailable := func(emit func(Entry) error) error {
		for {
			b, err := br.ReadBytes('\n')
			partial = append(partial, b...)
			if err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
			var e Entry
			if json.Unmarshal(bytes.TrimSpace(partial), &e) == nil && keep(e) {
				if err := emit(e); err != nil {
					return err
				}
			}
			partial = partial[:0]
		}
	}
	// The backlog, with tail applied.
	if err := readAvailable(func(e Entry) error { entries = append(entries, e); return nil }); err != nil {
		return err
	}
	if opts.Tail >= 0 && len(entries) > opts.Tail {
		entries = entries[len(entries)-opts.Tail:]
	}
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	return follow(ctx, path, opts.Done, func() error { return readAvailable(fn) })
}

// follow calls more each time the file grows, until ctx ends or done
// closes (after one last read).
func follow(ctx context.Context, path string, done <-chan struct{}, more func() error) error {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("follow log: %w", err)
	}
	inotify := os.NewFile(uintptr(ifd), "inotify")
	defer inotify.Close()
	if _, err := unix.InotifyAddWatch(ifd, path, unix.IN_MODIFY|unix.IN_CLOSE_WRITE); err != nil {
		return fmt.Errorf("follow log: %w", err)
	}
	events := make(chan error)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		buf := make([]byte, 4096)
		for {
			_, err := inotify.Read(buf)
			select {
			case events <- err:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		if err := more(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			return more()
		case err := <-events:
			if err != nil {
				return nil
			}
		}
	}
}
