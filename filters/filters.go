// Package filters owns Docker's --filter key=value arguments: how they are
// parsed and how list and prune operations match objects against them. The
// CLI parses them; the engine matches them; the Docker API will pass them
// through.
package filters

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/reference"
)

// Args are the --filter key=value flags of a command: each key with its
// values, in the order given and without repeats. A key that was not given
// filters nothing, so every Match helper reports true for it.
type Args map[string][]string

// Parse parses repeated --filter flags as docker does: "key=value",
// the key trimmed and lower-cased, the value trimmed; empty flags are
// ignored. A flag without "=" is "bad format of filter (expected
// name=value)"; a key not among allowed (when any are given) is "invalid
// filter 'key'". Both errors are of class errdefs.ErrInvalidArgument.
func Parse(args []string, allowed ...string) (Args, error) {
	f := Args{}
	for _, arg := range args {
		if arg == "" {
			continue
		}
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, errdefs.InvalidArgument("bad format of filter (expected name=value)")
		}
		f.add(strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	if len(allowed) > 0 {
		for _, arg := range args {
			k, _, _ := strings.Cut(arg, "=")
			if k = strings.ToLower(strings.TrimSpace(k)); arg != "" && !slices.Contains(allowed, k) {
				return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
			}
		}
	}
	return f, nil
}

func (f Args) add(key, value string) {
	if !slices.Contains(f[key], value) {
		f[key] = append(f[key], value)
	}
}

// Get returns the values given for key.
func (f Args) Get(key string) []string { return f[key] }

// Has reports whether key was given.
func (f Args) Has(key string) bool {
	_, ok := f[key]
	return ok
}

// Match reports whether value equals, or matches as a regular expression,
// one of key's values (docker's rule for name-like filters); true if key
// was not given.
func (f Args) Match(key, value string) bool {
	vals, ok := f[key]
	if !ok || slices.Contains(vals, value) {
		return true
	}
	for _, pattern := range vals {
		if m, err := regexp.MatchString(pattern, value); err == nil && m {
			return true
		}
	}
	return false
}

// Bool reads a boolean filter such as dangling=true: set is false if key
// was not given; "true" or "1" give true, "false" or "0" false, and
// anything else, or both at once, is "invalid filter 'key=[values]'".
func (f Args) Bool(key string) (val, set bool, err error) {
	vals, ok := f[key]
	if !ok {
		return false, false, nil
	}
	isTrue := slices.Contains(vals, "true") || slices.Contains(vals, "1")
	isFalse := slices.Contains(vals, "false") || slices.Contains(vals, "0")
	if isTrue == isFalse {
		return false, true, errdefs.InvalidArgument("invalid filter '%s=%s'", key, fmt.Sprint(vals))
	}
	return isTrue, true, nil
}

// MatchLabels reports whether labels satisfy every "label" filter: label=k
// needs key k, label=k=v needs k set to v. True if no label filter.
func (f Args) MatchLabels(labels map[string]string) bool {
	for _, want := range f["label"] {
		k, v, hasValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// MatchReference reports whether the image reference ref matches one of
// the "reference" filters, shell patterns as in path.Match tried against
// ref's familiar form ("busybox:latest") and then its familiar name
// ("busybox"). True if no reference filter.
func (f Args) MatchReference(ref string) bool {
	patterns, ok := f["reference"]
	if !ok {
		return true
	}
	named, err := reference.ParseNormalizedNamed(ref)
	for _, pattern := range patterns {
		if err != nil {
			if m, _ := path.Match(pattern, ref); m {
				return true
			}
			continue
		}
		if m, _ := reference.FamiliarMatch(pattern, named); m {
			return true
		}
	}
	return false
}
