package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxHashedFile bounds the files whose content StoreListing digests; larger
// files are listed by size alone (blobs are named by their digest anyway).
const maxHashedFile = 1 << 20

// StoreListing lists every file under root, one per line in lexical order:
// its mode, its size, its path relative to root, and for a symlink its target
// or for a regular file of at most 1 MiB the SHA-256 of its content. Compare
// the listing taken before a command that must fail with the one taken after
// it to prove the command left the store exactly as it was. A root that does
// not exist lists as the empty string. The spare writable snapshots that the
// snapshot store keeps ready for later containers (snapshots/<driver>/tmp/
// spare-<n>, and spare-new-<random> while one is made; see
// snapshot.Snapshotter.MakeSpares) are not listed: they come and go as
// containers are made and removed, and hold nothing of anyone's.
func StoreListing(t testing.TB, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				// The root not made yet, or an entry deleted while we
				// walk (a removed container's files are purged after the
				// command that removed it returns).
				return filepath.SkipDir
			}
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if d.IsDir() && isSpare(rel) {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%v %d %s", info.Mode(), info.Size(), rel)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", target)
		case info.Mode().IsRegular() && info.Size() <= maxHashedFile:
			sum, err := fileSHA256(path)
			if os.IsNotExist(err) {
				b.WriteString(" (deleted meanwhile)\n")
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha256:%s", sum)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatalf("listing store %s: %v", root, err)
	}
	return b.String()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// isSpare reports whether rel, a path relative to a data root, is a spare
// writable snapshot.
func isSpare(rel string) bool {
	dir, name := filepath.Split(rel)
	parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	return strings.HasPrefix(name, "spare-") && len(parts) == 3 && parts[0] == "snapshots" && parts[2] == "tmp"
}
