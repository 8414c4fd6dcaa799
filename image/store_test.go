package image

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
)

func testDB(t *testing.T) (*Store, digest.Digest, digest.Digest) {
	t.Helper()
	s, err := Open(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	a := digest.FromString("config a")
	b := digest.NewDigestFromEncoded(digest.SHA256, "ab"+a.Encoded()[2:])
	if a.Encoded()[:2] == "ab" {
		t.Fatal("pick another fixture")
	}
	md := digest.FromString("manifest a")
	err = s.Update(context.Background(), func(db *DB) error {
		db.Images[a] = &Record{ID: a, Manifest: ocispec.Descriptor{Digest: md}}
		db.Images[b] = &Record{ID: b}
		db.Tags["docker.io/library/busybox:latest"] = a
		db.Tags["example.com:5000/team/app:v1"] = b
		db.Digests["docker.io/library/busybox@"+md.String()] = a
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, a, b
}

func TestResolve(t *testing.T) {
	s, a, b := testDB(t)
	db, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	md := digest.FromString("manifest a")
	for _, tc := range []struct {
		name string
		want digest.Digest
		err  error
	}{
		{"busybox", a, nil},
		{"busybox:latest", a, nil},
		{"library/busybox", a, nil},
		{"docker.io/library/busybox:latest", a, nil},
		{"busybox@" + md.String(), a, nil},
		{"example.com:5000/team/app:v1", b, nil},
		{a.String(), a, nil},
		{a.Encoded(), a, nil},
		{a.Encoded()[:12], a, nil},
		{"ab", b, nil},
		{"busybox:other", "", errdefs.ErrNotFound},
		{"nosuch", "", errdefs.ErrNotFound},
		{"Busybox", "", errdefs.ErrInvalidArgument},
		{"bad//name", "", errdefs.ErrInvalidArgument},
		{"", "", errdefs.ErrInvalidArgument},
	} {
		r, err := db.Resolve(tc.name)
		if tc.err != nil {
			if err == nil || !errors.Is(err, tc.err) {
				t.Errorf("Resolve(%q) = %v, %v; want %v", tc.name, r, err, tc.err)
			}
			continue
		}
		if err != nil || r.ID != tc.want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", tc.name, r, err, tc.want)
		}
	}
}

func TestResolveAmbiguousPrefix(t *testing.T) {
	s, _, _ := testDB(t)
	ctx := context.Background()
	s.Update(ctx, func(db *DB) error {
		c := digest.NewDigestFromEncoded(digest.SHA256, "abff"+strings.Repeat("0", 60))
		db.Images[c] = &Record{ID: c}
		return nil
	})
	db, _ := s.Load(ctx)
	if _, err := db.Resolve("ab"); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
}

func TestNotFoundMessage(t *testing.T) {
	s, _, _ := testDB(t)
	db, _ := s.Load(context.Background())
	_, err := db.Resolve("docker.io/library/nosuch")
	if err == nil || err.Error() != "No such image: nosuch:latest" {
		t.Fatalf("err = %v", err)
	}
}

func TestUpdateFailureSavesNothing(t *testing.T) {
	s, a, _ := testDB(t)
	ctx := context.Background()
	before, _ := os.ReadFile(filepath.Join(s.dir, "images.json"))
	err := s.Update(ctx, func(db *DB) error {
		delete(db.Images, a)
		return errdefs.Conflict("changed my mind")
	})
	if !errdefs.IsConflict(err) {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(s.dir, "images.json"))
	if string(before) != string(after) {
		t.Fatal("failed update changed the store")
	}
}

func TestDanglingNamesDropped(t *testing.T) {
	s, a, _ := testDB(t)
	ctx := context.Background()
	s.Update(ctx, func(db *DB) error { delete(db.Images, a); return nil })
	db, _ := s.Load(ctx)
	if len(db.TagsOf(a)) != 0 || len(db.DigestsOf(a)) != 0 || len(db.Tags) != 1 {
		t.Fatalf("names of a removed image remain: %v %v", db.Tags, db.Digests)
	}
}

// Many writers, each a separate Store on the same directory as separate
// processes would be, each adding a tag: none is lost.
func TestConcurrentUpdates(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	id := digest.FromString("x")
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := Open(dir, filepath.Join(dir, "index.json"))
			err := s.Update(ctx, func(db *DB) error {
				db.Images[id] = &Record{ID: id}
				db.Tags["docker.io/library/t:"+string(rune('a'+i))] = id
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s, _ := Open(dir, "")
	db, _ := s.Load(ctx)
	if len(db.Tags) != 30 {
		t.Fatalf("tags = %d, want 30", len(db.Tags))
	}
	var idx ocispec.Index
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 30 {
		t.Fatalf("index.json: %d manifests, %v", len(idx.Manifests), err)
	}
}

func TestChainIDs(t *testing.T) {
	a, b := digest.FromString("a"), digest.FromString("b")
	got := ChainIDs([]digest.Digest{a, b})
	want := digest.FromString(a.String() + " " + b.String())
	if got[0] != a || got[1] != want {
		t.Fatalf("ChainIDs = %v", got)
	}
}

func TestParseTag(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                 "docker.io/library/busybox:latest",
		"me/app:v1":               "docker.io/me/app:v1",
		"localhost:5000/app":      "localhost:5000/app:latest",
		"registry.example.com/ab": "registry.example.com/ab:latest",
	} {
		r, err := ParseTag(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseTag(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, in := range []string{"UPPER", "a@sha256:" + strings.Repeat("0", 64), "", "a:b:c"} {
		if _, err := ParseTag(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseTag(%q) err = %v", in, err)
		}
	}
}
