package container

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/errdefs"
)

func newContainer(name string) *Container {
	return &Container{ID: NewID(), Name: "/" + name, Created: time.Now()}
}

func TestCreateResolveDelete(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newContainer("web")
	if err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"web", "/web", c.ID, c.ID[:12], c.ID[:3]} {
		if id, err := s.Resolve(ctx, ref); err != nil || id != c.ID {
			t.Errorf("Resolve(%q) = %q, %v", ref, id, err)
		}
	}
	err = s.Create(ctx, newContainer("web"))
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), `The container name "/web" is already in use`) {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := s.Rename(ctx, c.ID, "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "web"); !errdefs.IsNotFound(err) {
		t.Errorf("old name still resolves: %v", err)
	}
	if err := s.Create(ctx, newContainer("web")); err != nil {
		t.Errorf("old name not freed by rename: %v", err)
	}
	if err := s.Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "api"); !errdefs.IsNotFound(err) {
		t.Errorf("deleted container resolves: %v", err)
	}
	for _, bad := range []string{"-x", "a b", "é"} {
		if err := s.Create(ctx, newContainer(bad)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
}

// Twenty creators racing for one name: exactly one wins.
func TestNameRace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := OpenStore(dir)
			if s.Create(ctx, newContainer("only")) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d creators got the name", wins)
	}
}

func TestUpdateSerializes(t *testing.T) {
	ctx := context.Background()
	s, _ := OpenStore(t.TempDir())
	c := newContainer("n")
	s.Create(ctx, c)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Update(ctx, c.ID, func(c *Container) error { c.RestartCount++; return nil })
		}()
	}
	wg.Wait()
	got, _ := s.Get(ctx, c.ID)
	if got.RestartCount != 20 {
		t.Fatalf("RestartCount = %d, want 20", got.RestartCount)
	}
}

func TestRandomName(t *testing.T) {
	n := RandomName()
	if !validName.MatchString(n) || !strings.Contains(n, "_") {
		t.Fatalf("RandomName() = %q", n)
	}
}
