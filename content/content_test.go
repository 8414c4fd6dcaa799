package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

func TestIngestAndRead(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello layer")
	d := digest.FromBytes(data)
	info, err := s.Ingest(ctx, bytes.NewReader(data), d)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != d || info.Size != int64(len(data)) {
		t.Fatalf("info = %+v", info)
	}
	got, err := s.ReadAll(ctx, d, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if _, err := s.ReadAll(ctx, d, 3); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ReadAll over limit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "oci-layout")); err != nil {
		t.Fatal(err)
	}
	var seen []digest.Digest
	s.Walk(ctx, func(i Info) error { seen = append(seen, i.Digest); return nil })
	if len(seen) != 1 || seen[0] != d {
		t.Fatalf("walk = %v", seen)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, d); !errdefs.IsNotFound(err) {
		t.Fatalf("Info after delete: %v", err)
	}
}

func TestDigestMismatchStoresNothing(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wrong := digest.FromString("something else")
	_, err = s.Ingest(ctx, strings.NewReader("payload"), wrong)
	if !errors.Is(err, errdefs.ErrDataCorrupt) {
		t.Fatalf("err = %v, want data corrupt", err)
	}
	for _, dir := range []string{"blobs/sha256", "ingest"} {
		ents, _ := os.ReadDir(filepath.Join(s.Root(), dir))
		if len(ents) != 0 {
			t.Errorf("%s not empty after failed ingest: %v", dir, ents)
		}
	}
}

func TestInvalidDigest(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{"sha256:../../etc", "md5:abc", "sha256:xyz", ""} {
		if _, err := s.Info(context.Background(), d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Info(%q) = %v, want invalid argument", d, err)
		}
	}
}

// Two stores on one root (two berth processes) writing the same blob at
// once both succeed and leave one verified copy.
func TestConcurrentIngest(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data := bytes.Repeat([]byte("x"), 1<<20)
	d := digest.FromBytes(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(root)
			if err != nil {
				errs <- err
				return
			}
			w, err := s.Writer(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer w.Close()
			for off := 0; off < len(data); off += 4096 {
				w.Write(data[off : off+4096])
			}
			_, err = w.Commit(ctx, d)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := Open(root)
	got, err := s.ReadAll(ctx, d, 2<<20)
	if err != nil || digest.FromBytes(got) != d {
		t.Fatalf("blob after concurrent ingest: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "ingest"))
	if len(ents) != 0 {
		t.Fatalf("ingest files left: %d", len(ents))
	}
}
