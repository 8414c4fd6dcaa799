package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpareSlots checks where spares come from and go: MakeSpares fills
// the slots, Prepare takes one, Remove keeps an unchanged snapshot as one
// and deletes a changed one; native makes none.
func TestSpareSlots(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		driver string
		slots  int
	}{{"overlay", spareSlots}, {"native", 0}} {
		t.Run(tt.driver, func(t *testing.T) {
			root := t.TempDir()
			sn, err := New(root, tt.driver)
			if err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(root, tt.driver, "tmp")
			spares := func() int {
				t.Helper()
				entries, err := os.ReadDir(tmp)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), sparePrefix) {
						n++
					} else {
						t.Errorf("tmp/ holds %s", e.Name())
					}
				}
				return n
			}
			if err := sn.MakeSpares(ctx); err != nil {
				t.Fatal(err)
			}
			if n := spares(); n != tt.slots {
				t.Fatalf("after MakeSpares: %d spares, want %d", n, tt.slots)
			}
			if _, err := sn.Prepare(ctx, "a", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := sn.Prepare(ctx, "b", ""); err != nil {
				t.Fatal(err)
			}
			if n, want := spares(), max(tt.slots-2, 0); n != want {
				t.Errorf("after two Prepares: %d spares, want %d", n, want)
			}
			if err := sn.Remove(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if n, want := spares(), max(tt.slots-1, 0); n != want {
				t.Errorf("after removing an unchanged snapshot: %d spares, want %d", n, want)
			}
			upper, err := sn.UpperDir(ctx, "b")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(upper, "f"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := sn.Remove(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			if n, want := spares(), max(tt.slots-1, 0); n != want {
				t.Errorf("after removing a changed snapshot: %d spares, want %d", n, want)
			}
		})
	}
}
