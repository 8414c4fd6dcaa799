package build

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
)

// source is a tree COPY and ADD read from: the build context (with its
// .dockerignore) or the root file system of a stage or an image.
type source struct {
	root string
	// ignore is the .dockerignore of the context; nil for a stage.
	ignore *patternmatcher.PatternMatcher
	// keepOwner keeps the files' owners (from a stage), where files from
	// the context belong to root.
	keepOwner bool
	// name is "context" or the stage or image, for messages.
	name string
}

// ignored reports whether the context excludes rel (slash-separated,
// relative to the root).
func (s *source) ignored(rel string) bool {
	if s.ignore == nil || rel == "." || rel == "" {
		return false
	}
	ok, err := s.ignore.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// match resolves one COPY source (which may hold wildcards) to the
// relative paths it names, in order. A source naming nothing is an error.
func (s *source) match(src string) ([]string, error) {
	rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(src)), "/")
	if rel == "" {
		rel = "."
	}
	if !hasMeta(rel) {
		p, err := securejoin.SecureJoin(s.root, rel)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(p); err != nil || s.ignored(rel) {
			return nil, errdefs.NotFound("%s: %q not found", s.describe(), src)
		}
		return []string{rel}, nil
	}
	var out []string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(s.root, p)
		r = filepath.ToSlash(r)
		if r == "." {
			return nil
		}
		if ok, _ := path.Match(rel, r); ok && !s.ignored(r) {
			out = append(out, r)
		}
		// Do not descend deeper than the pattern can match.
		if d.IsDir() && strings.Count(r, "/") >= strings.Count(rel, "/") {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.describe(), err)
	}
	if len(out) == 0 {
		return nil, errdefs.NotFound("%s: no source files were specified matching %q", s.describe(), src)
	}
	return out, nil
}

func (s *source) describe() string {
	if s.name == "context" {
		return "failed to compute cache key: the build context"
	}
	return s.name
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// hash writes to h what COPY would copy from rel: each entry's path, type,
// mode, owner (for a stage), link target and content — not its times.
func (s *source) hash(h io.Writer, rel string) error {
	top, err := securejoin.SecureJoin(s.root, rel)
	if err != nil {
		return err
	}
	return filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(s.root, p)
		r = filepath.ToSlash(r)
		if p != top && s.ignored(r) {
			if d.IsDir() && !s.ignore.Exclusions() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o", r, fi.Mode())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && s.keepOwner {
			fmt.Fprintf(h, "\x00%d:%d", st.Uid, st.Gid)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "\x00%s", t)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "\x00%x", fh.Sum(nil))
		}
		fmt.Fprintln(h)
		return nil
	})
}

// digestSources hashes every matched path of every source.
func (s *source) digestSources(rels []string) (digest.Digest, error) {
	h := digest.SHA256.Digester()
	rels = slices.Clone(rels)
	for _, r := range rels {
		if err := s.hash(h.Hash(), r); err != nil {
			return "", fmt.Errorf("%s: %w", s.describe(), err)
		}
	}
	return h.Digest(), nil
}

// securejoinIn resolves rel inside root, following symlinks as if root
// were the root directory.
func securejoinIn(root, rel string) (string, error) { return securejoin.SecureJoin(root, rel) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
