package archive

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchLayer returns a layer of about 128 MiB like a distribution's: many
// small files in a few hundred directories and some large ones, with
// content that compresses about as well as binaries do.
func benchLayer(b *testing.B) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 256)
	for i := range words {
		w := make([]byte, 4+rng.IntN(12))
		for j := range w {
			w[j] = byte(rng.Uint32())
		}
		words[i] = w
	}
	content := func(n int) string {
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.Write(words[rng.IntN(len(words))])
		}
		return buf.String()[:n]
	}
	var entries []entry
	for d := range 200 {
		entries = append(entries, dir(fmt.Sprintf("d%03d/", d)))
		for f := range 40 {
			entries = append(entries, reg(fmt.Sprintf("d%03d/f%02d", d, f), content(512+rng.IntN(16<<10))))
		}
	}
	for f := range 16 {
		entries = append(entries, reg(fmt.Sprintf("big%02d", f), content(4<<20)))
	}
	return layer(b, entries...)
}

func BenchmarkApply(b *testing.B) {
	raw := benchLayer(b)
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"uncompressed", raw},
		{"gzip", gzipped(b, raw)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			base := b.TempDir()
			b.SetBytes(int64(len(raw)))
			i := 0
			for b.Loop() {
				d := filepath.Join(base, fmt.Sprint(i))
				i++
				if err := os.Mkdir(d, 0o755); err != nil {
					b.Fatal(err)
				}
				if _, err := Apply(context.Background(), d, bytes.NewReader(bc.data), ApplyOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(d)
				b.StartTimer()
			}
		})
	}
}
