// Package reference parses and normalizes image references (name, tag,
// digest) with the grammar and the Docker normalization of
// github.com/distribution/reference: `busybox` is
// docker.io/library/busybox, `localhost:5000/x:1` keeps its domain, and so
// on. It gives the same results and the same errors as that package (its
// tests compare the two), but parses by hand instead of through regular
// expressions: distribution/reference compiles a dozen of them when the
// program starts, which costs every berth command about a millisecond and
// 400 KB before it does anything.
package reference

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
)

// RepositoryNameTotalLengthMax is the longest a repository path may be.
const RepositoryNameTotalLengthMax = 255

const (
	defaultDomain       = "docker.io"
	legacyDefaultDomain = "index.docker.io"
	officialRepoPrefix  = "library/"
	defaultTag          = "latest"
	localhost           = "localhost"
)

// The errors Parse returns, as distribution/reference words them.
var (
	ErrReferenceInvalidFormat = errors.New("invalid reference format")
	ErrTagInvalidFormat       = errors.New("invalid tag format")
	ErrDigestInvalidFormat    = errors.New("invalid digest format")
	ErrNameContainsUppercase  = errors.New("repository name must be lowercase")
	ErrNameEmpty              = errors.New("repository name must have at least one component")
	ErrNameTooLong            = fmt.Errorf("repository name must not be more than %v characters", RepositoryNameTotalLengthMax)
	ErrNameNotCanonical       = errors.New("repository name must be canonical")
)

// Reference is any parsed reference.
type Reference interface {
	String() string
}

// Named is a reference with a repository name.
type Named interface {
	Reference
	Name() string
}

// Tagged is a reference with a tag.
type Tagged interface {
	Reference
	Tag() string
}

// NamedTagged is a name with a tag.
type NamedTagged interface {
	Named
	Tag() string
}

// Digested is a reference with a digest.
type Digested interface {
	Reference
	Digest() digest.Digest
}

// Canonical is a name with a digest.
type Canonical interface {
	Named
	Digest() digest.Digest
}

type namedRepository interface {
	Named
	Domain() string
	Path() string
}

type normalizedNamed interface {
	Named
	Familiar() Named
}

// Parse parses s as reference := name [":" tag] ["@" digest], without
// normalizing it.
func Parse(s string) (Reference, error) {
	name, tag, dgst, ok := split(s)
	if !ok {
		if s == "" {
			return nil, ErrNameEmpty
		}
		if _, _, _, ok := split(strings.ToLower(s)); ok {
			return nil, ErrNameContainsUppercase
		}
		return nil, ErrReferenceInvalidFormat
	}
	domain, p, _ := splitName(name)
	if len(p) > RepositoryNameTotalLengthMax {
		return nil, ErrNameTooLong
	}
	repo := repository{domain: domain, path: p}
	var d digest.Digest
	if dgst != "" {
		var err error
		if d, err = digest.Parse(dgst); err != nil {
			return nil, err
		}
	}
	switch {
	case tag == "" && d == "":
		return repo, nil
	case tag == "":
		return canonicalReference{namedRepository: repo, digest: d}, nil
	case d == "":
		return taggedReference{namedRepository: repo, tag: tag}, nil
	}
	return reference{namedRepository: repo, tag: tag, digest: d}, nil
}

// split cuts s into its name, tag and digest, and reports whether each is
// well formed. A name holds no '@', and a ':' after its last '/' starts the
// tag: the grammar leaves no other way to read a reference.
func split(s string) (name, tag, dgst string, ok bool) {
	name = s
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name, dgst = name[:i], name[i+1:]
		if !isDigest(dgst) {
			return "", "", "", false
		}
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 && i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
		if !isTag(tag) {
			return "", "", "", false
		}
	}
	if _, _, ok := splitName(name); !ok {
		return "", "", "", false
	}
	return name, tag, dgst, true
}

// splitName cuts a name into its domain (when its first component reads
// as one) and its path, and reports whether the name is well formed.
func splitName(name string) (domain, p string, ok bool) {
	if d, rest, found := strings.Cut(name, "/"); found && isDomainAndPort(d) && isRemoteName(rest) {
		return d, rest, true
	}
	if isRemoteName(name) {
		return "", name, true
	}
	return "", "", false
}

// isRemoteName: path-component ['/' path-component]*.
func isRemoteName(s string) bool {
	for {
		c, rest, more := strings.Cut(s, "/")
		if !isPathComponent(c) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// isPathComponent: [a-z0-9]+ (separator [a-z0-9]+)* where a separator is
// one '.', one or two '_', or any number of '-'.
func isPathComponent(s string) bool {
	i := 0
	for {
		start := i
		for i < len(s) && isLowerAlnum(s[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(s) {
			return true
		}
		switch s[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(s) && s[i] == '_' {
				i++
			}
		case '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// isDomainAndPort: (domain-name | '[' ipv6 ']') [':' port].
func isDomainAndPort(s string) bool {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, s = s[:end+1], s[end+1:]
		if len(host) < 3 || !allBytes(host[1:len(host)-1], isIPv6Byte) {
			return false
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, s = s[:i], s[i:]
		} else {
			s = ""
		}
		for _, c := range strings.Split(host, ".") {
			if !isDomainComponent(c) {
				return false
			}
		}
	}
	if s == "" {
		return true
	}
	return len(s) > 1 && s[0] == ':' && allBytes(s[1:], isDigit)
}

// isDomainComponent: [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9].
func isDomainComponent(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	return allBytes(s, func(c byte) bool { return isAlnum(c) || c == '-' })
}

// isTag: [\w][\w.-]{0,127}.
func isTag(s string) bool {
	if s == "" || len(s) > 128 || !isWord(s[0]) {
		return false
	}
	return allBytes(s, func(c byte) bool { return isWord(c) || c == '.' || c == '-' })
}

// isDigest: algorithm ':' at least 32 hex digits, the algorithm being
// [A-Za-z][A-Za-z0-9]* components joined by one of "-_+.".
func isDigest(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) < 32 || !allBytes(hex, isHex) {
		return false
	}
	atStart := true
	for i := 0; i < len(alg); i++ {
		c := alg[i]
		switch {
		case atStart:
			if !isAlpha(c) {
				return false
			}
			atStart = false
		case c == '-' || c == '_' || c == '+' || c == '.':
			atStart = true
		case !isAlpha(c) && !isDigit(c):
			return false
		}
	}
	return alg != "" && !atStart
}

// isIdentifier: 64 lowercase hex digits, an image ID.
func isIdentifier(s string) bool {
	return len(s) == 64 && allBytes(s, func(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') })
}

func allBytes(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool      { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool      { return isAlpha(c) || isDigit(c) }
func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || isDigit(c) }
func isWord(c byte) bool       { return isAlnum(c) || c == '_' }
func isHex(c byte) bool        { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
func isIPv6Byte(c byte) bool   { return isHex(c) || c == ':' }

// ParseNormalizedNamed parses a reference as Docker's UI takes one,
// filling in docker.io and library/: `busybox` is docker.io/library/busybox.
func ParseNormalizedNamed(s string) (Named, error) {
	if isIdentifier(s) {
		return nil, fmt.Errorf("invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s)
	}
	domain, remainder := splitDockerDomain(s)
	remote := remainder
	if i := strings.IndexByte(remainder, ':'); i > -1 {
		remote = remainder[:i]
	}
	if strings.ToLower(remote) != remote {
		return nil, fmt.Errorf("invalid reference format: repository name (%s) must be lowercase", remote)
	}
	ref, err := Parse(domain + "/" + remainder)
	if err != nil {
		return nil, err
	}
	named, ok := ref.(Named)
	if !ok {
		return nil, fmt.Errorf("reference %s has no name", ref.String())
	}
	return named, nil
}

// ParseNamed parses a reference that must already be in its normalized
// form.
func ParseNamed(s string) (Named, error) {
	named, err := ParseNormalizedNamed(s)
	if err != nil {
		return nil, err
	}
	if named.String() != s {
		return nil, ErrNameNotCanonical
	}
	return named, nil
}

// ParseAnyReference parses an image ID (64 hex digits), a digest or a
// familiar name.
func ParseAnyReference(s string) (Reference, error) {
	if isIdentifier(s) {
		return digestReference("sha256:" + s), nil
	}
	if d, err := digest.Parse(s); err == nil {
		return digestReference(d), nil
	}
	return ParseNormalizedNamed(s)
}

// splitDockerDomain splits a familiar name into its domain and the rest,
// as Docker reads it: a first component is a domain if it is localhost or
// holds a '.', a ':' or an uppercase letter.
func splitDockerDomain(name string) (domain, remote string) {
	maybeDomain, maybeRemote, ok := strings.Cut(name, "/")
	if !ok {
		return defaultDomain, officialRepoPrefix + name
	}
	switch {
	case maybeDomain == localhost:
		domain, remote = maybeDomain, maybeRemote
	case maybeDomain == legacyDefaultDomain:
		domain, remote = defaultDomain, maybeRemote
	case strings.ContainsAny(maybeDomain, ".:"):
		domain, remote = maybeDomain, maybeRemote
	case strings.ToLower(maybeDomain) != maybeDomain:
		domain, remote = maybeDomain, maybeRemote
	default:
		domain, remote = defaultDomain, name
	}
	if domain == defaultDomain && !strings.ContainsRune(remote, '/') {
		remote = officialRepoPrefix + remote
	}
	return domain, remote
}

// WithName returns the reference for a bare name.
func WithName(name string) (Named, error) {
	domain, p, ok := splitName(name)
	if !ok {
		return nil, ErrReferenceInvalidFormat
	}
	if len(p) > RepositoryNameTotalLengthMax {
		return nil, ErrNameTooLong
	}
	return repository{domain: domain, path: p}, nil
}

// WithTag gives name a tag (keeping its digest, if any).
func WithTag(name Named, tag string) (NamedTagged, error) {
	if !isTag(tag) {
		return nil, ErrTagInvalidFormat
	}
	repo := repoOf(name)
	if c, ok := name.(Canonical); ok {
		return reference{namedRepository: repo, tag: tag, digest: c.Digest()}, nil
	}
	return taggedReference{namedRepository: repo, tag: tag}, nil
}

// WithDigest gives name a digest (keeping its tag, if any).
func WithDigest(name Named, d digest.Digest) (Canonical, error) {
	if !isDigest(d.String()) {
		return nil, ErrDigestInvalidFormat
	}
	repo := repoOf(name)
	if t, ok := name.(Tagged); ok {
		return reference{namedRepository: repo, tag: t.Tag(), digest: d}, nil
	}
	return canonicalReference{namedRepository: repo, digest: d}, nil
}

func repoOf(name Named) repository {
	if r, ok := name.(namedRepository); ok {
		return repository{domain: r.Domain(), path: r.Path()}
	}
	return repository{path: name.Name()}
}

// TrimNamed drops the tag and digest of ref.
func TrimNamed(ref Named) Named {
	if r, ok := ref.(namedRepository); ok {
		return repository{domain: r.Domain(), path: r.Path()}
	}
	domain, p := splitDomain(ref.Name())
	return repository{domain: domain, path: p}
}

// TagNameOnly tags a bare name "latest".
func TagNameOnly(ref Named) Named {
	if IsNameOnly(ref) {
		return taggedReference{namedRepository: repoOf(ref), tag: defaultTag}
	}
	return ref
}

// IsNameOnly reports whether ref has neither tag nor digest.
func IsNameOnly(ref Named) bool {
	if _, ok := ref.(NamedTagged); ok {
		return false
	}
	if _, ok := ref.(Canonical); ok {
		return false
	}
	return true
}

// Domain returns the domain of a name.
func Domain(named Named) string {
	if r, ok := named.(namedRepository); ok {
		return r.Domain()
	}
	domain, _ := splitDomain(named.Name())
	return domain
}

// Path returns a name without its domain.
func Path(named Named) string {
	if r, ok := named.(namedRepository); ok {
		return r.Path()
	}
	_, p := splitDomain(named.Name())
	return p
}

func splitDomain(name string) (string, string) {
	domain, p, ok := splitName(name)
	if !ok {
		return "", name
	}
	return domain, p
}

// FamiliarName returns a name as Docker's UI shows it (busybox, not
// docker.io/library/busybox).
func FamiliarName(ref Named) string {
	if nn, ok := ref.(normalizedNamed); ok {
		return nn.Familiar().Name()
	}
	return ref.Name()
}

// FamiliarString returns a reference as Docker's UI shows it.
func FamiliarString(ref Reference) string {
	if nn, ok := ref.(normalizedNamed); ok {
		return nn.Familiar().String()
	}
	return ref.String()
}

// FamiliarMatch reports whether the familiar form of ref (or of its name)
// matches pattern (path.Match syntax).
func FamiliarMatch(pattern string, ref Reference) (bool, error) {
	matched, err := path.Match(pattern, FamiliarString(ref))
	if named, ok := ref.(Named); ok && !matched {
		matched, _ = path.Match(pattern, FamiliarName(named))
	}
	return matched, err
}

func familiarize(r namedRepository) repository {
	repo := repository{domain: r.Domain(), path: r.Path()}
	if repo.domain == defaultDomain {
		repo.domain = ""
		if rest, ok := strings.CutPrefix(repo.path, officialRepoPrefix); ok && !strings.ContainsRune(rest, '/') {
			repo.path = rest
		}
	}
	return repo
}

type repository struct {
	domain, path string
}

func (r repository) String() string { return r.Name() }
func (r repository) Domain() string { return r.domain }
func (r repository) Path() string   { return r.path }
func (r repository) Name() string {
	if r.domain == "" {
		return r.path
	}
	return r.domain + "/" + r.path
}
func (r repository) Familiar() Named { return familiarize(r) }

type taggedReference struct {
	namedRepository
	tag string
}

func (t taggedReference) String() string { return t.Name() + ":" + t.tag }
func (t taggedReference) Tag() string    { return t.tag }
func (t taggedReference) Familiar() Named {
	return taggedReference{namedRepository: familiarize(t.namedRepository), tag: t.tag}
}

type canonicalReference struct {
	namedRepository
	digest digest.Digest
}

func (c canonicalReference) String() string        { return c.Name() + "@" + c.digest.String() }
func (c canonicalReference) Digest() digest.Digest { return c.digest }
func (c canonicalReference) Familiar() Named {
	return canonicalReference{namedRepository: familiarize(c.namedRepository), digest: c.digest}
}

type reference struct {
	namedRepository
	tag    string
	digest digest.Digest
}

func (r reference) String() string        { return r.Name() + ":" + r.tag + "@" + r.digest.String() }
func (r reference) Tag() string           { return r.tag }
func (r reference) Digest() digest.Digest { return r.digest }
func (r reference) Familiar() Named {
	return reference{namedRepository: familiarize(r.namedRepository), tag: r.tag, digest: r.digest}
}

type digestReference digest.Digest

func (d digestReference) String() string        { return string(d) }
func (d digestReference) Digest() digest.Digest { return digest.Digest(d) }
