package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

func (s *store) Lookup(ctx context.Context, chainID digest.Digest, path string) (fs.FileInfo, error) {
	if err := checkID(chainID, "chain ID"); err != nil {
		return nil, err
	}
	clean := filepath.Clean("/" + path)
	if clean == "/" {
		return nil, errdefs.InvalidArgument("look up %q: not a path below the root", path)
	}
	chain, err := s.chain(chainID)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", path, err)
	}
	elems := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	if s.d.name() != "overlay" {
		chain = chain[:1] // every layer directory is a full tree
	}
	for _, dir := range chain {
		fi, found, err := lookupLayer(dir, elems)
		if err != nil || found {
			if err != nil {
				err = fmt.Errorf("look up %s: %w", path, err)
			}
			return fi, err
		}
	}
	return nil, &fs.PathError{Op: "lookup", Path: path, Err: fs.ErrNotExist}
}

// lookupLayer looks elems up in one overlay layer directory. found says
// the answer is final: the entry (fi), or its absence (a whiteout, a
// non-directory or an opaque directory on the way: fs.ErrNotExist). Not
// found, the layers below decide.
func lookupLayer(dir string, elems []string) (fi fs.FileInfo, found bool, err error) {
	notExist := &fs.PathError{Op: "lookup", Path: strings.Join(elems, "/"), Err: fs.ErrNotExist}
	p := dir
	// Below an opaque directory, the layers underneath are hidden: the
	// rest of the path is in this layer or nowhere.
	opaque := false
	for i, el := range elems {
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			if opaque {
				return nil, true, notExist
			}
			return nil, false, nil
		} else if err != nil {
			return nil, true, err
		}
		if isWhiteout(fi) {
			return nil, true, notExist
		}
		if i == len(elems)-1 {
			return fi, true, nil
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, true, errdefs.InvalidArgument("%s is a symbolic link", strings.Join(elems[:i+1], "/"))
		case !fi.IsDir():
			return nil, true, notExist
		}
		opaque = opaque || isOpaque(p)
	}
	return nil, false, nil
}

// isWhiteout reports whether fi is an overlay whiteout: a 0/0 character
// device.
func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// isOpaque reports whether dir is an opaque overlay directory.
func isOpaque(dir string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(dir, "trusted.overlay.opaque", b[:])
	return err == nil && n == 1 && b[0] == 'y'
}
