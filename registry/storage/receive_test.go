package storage

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/opencontainers/go-digest"
)

// trickle hands out at most n bytes a Read, as a socket does.
type trickle struct {
	r io.Reader
	n int
}

func (t trickle) Read(p []byte) (int, error) {
	if len(p) > t.n {
		p = p[:t.n]
	}
	return t.r.Read(p)
}

// Blobs larger than the receive buffer and the writeback chunk, arriving in
// small reads, in chunks of odd sizes or in one request, are stored intact
// under both digest algorithms.
func TestReceiveLargeBlobs(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, writebackChunk+3*receiveBufSize+12345)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		d := alg.FromBytes(data)
		up, err := s.StartUpload(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); {
			end := min(off+receiveBufSize+777, len(data))
			if _, err := s.AppendUpload(ctx, "a", up.ID, int64(off), trickle{bytes.NewReader(data[off:end]), 5000}); err != nil {
				t.Fatal(err)
			}
			off = end
		}
		if info, err := s.CommitUpload(ctx, "a", up.ID, d); err != nil || info.Size != int64(len(data)) {
			t.Fatalf("commit %s: %v, %+v", alg, err, info)
		}
		if _, err := s.PutBlob(ctx, "b", d, trickle{bytes.NewReader(data), 70000}); err != nil {
			t.Fatal(err)
		}
		for _, repo := range []string{"a", "b"} {
			f, _, err := s.OpenBlob(ctx, repo, d)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(f)
			f.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("%s %s: stored bytes differ", repo, alg)
			}
		}
	}
}
