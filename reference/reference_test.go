package reference

import (
	"fmt"
	"strings"
	"testing"

	upstream "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

const hex64 = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"

// corpus holds references valid and not, drawn from distribution/reference's
// own tests and from what users type.
var corpus = []string{
	"", "busybox", "busybox:latest", "busybox:1.36.1-musl", "library/busybox",
	"docker.io/busybox", "docker.io/library/busybox:1", "index.docker.io/busybox",
	"index.docker.io/library/busybox", "localhost/x", "localhost:5000/x", "localhost:5000/x:y",
	"localhost:5000", "localhost", "127.0.0.1:5000/a/b/c:d", "[::1]:5000/x", "[::1]/x", "[::1]",
	"[fe80::1%eth0]:5000/x", "[]:5000/x", "[zz]/x", "example.com/ns/app:v1", "Example.com/x",
	"exAmple/x", "UPPER", "upper/Case", "a/B", "a-b/c", "a--b/c", "a-/c", "-a/c", "a_b", "a__b", "a___b",
	"a._b", "a.b.c", "a..b", "a.", ".a", "_a", "a/", "/a", "a//b", "a:b:c", "a:b/c:d", "foo:123/bar",
	"foo:/bar", "foo:12a/bar", "a@" + "sha256:" + hex64, "a:t@sha256:" + hex64, "a@sha256:abc",
	"a@sha256:" + hex64 + "0", "a@sha512:" + hex64 + hex64, "a@SHA256:" + hex64, "a@sha256:" + strings.ToUpper(hex64),
	"a@md5:" + hex64[:32], "a@sha256+b64:" + hex64, "a@s-h.a_2+5:" + hex64, "sha256:" + hex64, hex64, hex64[:12],
	"a:" + strings.Repeat("t", 128), "a:" + strings.Repeat("t", 129), "a:.t", "a:-t", "a:_t", "a:T", "a:t.t-t_t",
	strings.Repeat("a", 255), strings.Repeat("a", 256), "docker.io/" + strings.Repeat("a", 250),
	"a/" + strings.Repeat("b", 254), "xn--bcher-kva.example/x", "a-.com/x", "a.-com/x", "1.2.3.4/x",
	"registry.example.com:443/team/app@sha256:" + hex64, "a@b", "a@", "@sha256:" + hex64, ":tag", "a:",
	"ns/name:tag@sha256:" + hex64, "ns/name@sha256:" + hex64 + "@sha256:" + hex64, "é", "a/é", "a b",
}

func describe(r interface{ String() string }, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	s := fmt.Sprintf("%T %s", r, r.String())
	s = strings.NewReplacer("reference.", "", "upstream.", "").Replace(s)
	if n, ok := r.(interface{ Name() string }); ok {
		s += " name=" + n.Name()
	}
	if t, ok := r.(interface{ Tag() string }); ok {
		s += " tag=" + t.Tag()
	}
	if d, ok := r.(interface{ Digest() digest.Digest }); ok {
		s += " digest=" + d.Digest().String()
	}
	return s
}

// TestSameAsDistribution parses every corpus entry with both packages and
// wants the same reference (type, string, parts) or the same error.
func TestSameAsDistribution(t *testing.T) {
	for _, s := range corpus {
		compare(t, s)
	}
}

// FuzzSameAsDistribution looks for a string the two packages read
// differently.
func FuzzSameAsDistribution(f *testing.F) {
	for _, s := range corpus {
		f.Add(s)
	}
	f.Fuzz(compare)
}

func compare(t *testing.T, s string) {
	got, err := Parse(s)
	want, uerr := upstream.Parse(s)
	if g, w := describe(got, err), describe(want, uerr); g != w {
		t.Errorf("Parse(%q) = %s, distribution/reference gives %s", s, g, w)
	}
	n, err := ParseNormalizedNamed(s)
	un, uerr := upstream.ParseNormalizedNamed(s)
	if g, w := describe(n, err), describe(un, uerr); g != w {
		t.Fatalf("ParseNormalizedNamed(%q) = %s, distribution/reference gives %s", s, g, w)
	}
	if err == nil {
		checks := []struct{ what, got, want string }{
			{"FamiliarString", FamiliarString(n), upstream.FamiliarString(un)},
			{"FamiliarName", FamiliarName(n), upstream.FamiliarName(un)},
			{"Domain", Domain(n), upstream.Domain(un)},
			{"Path", Path(n), upstream.Path(un)},
			{"TrimNamed", TrimNamed(n).String(), upstream.TrimNamed(un).String()},
			{"TagNameOnly", TagNameOnly(n).String(), upstream.TagNameOnly(un).String()},
			{"FamiliarString of TagNameOnly", FamiliarString(TagNameOnly(n)), upstream.FamiliarString(upstream.TagNameOnly(un))},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s(%q) = %q, distribution/reference gives %q", c.what, s, c.got, c.want)
			}
		}
	}
	a, err := ParseAnyReference(s)
	ua, uerr := upstream.ParseAnyReference(s)
	if g, w := describe(a, err), describe(ua, uerr); g != w {
		t.Errorf("ParseAnyReference(%q) = %s, distribution/reference gives %s", s, g, w)
	}
	wn, err := WithName(s)
	uwn, uerr := upstream.WithName(s)
	if g, w := describe(wn, err), describe(uwn, uerr); g != w {
		t.Errorf("WithName(%q) = %s, distribution/reference gives %s", s, g, w)
	}
	if err == nil {
		wt, err := WithTag(wn, "v1")
		uwt, uerr := upstream.WithTag(uwn, "v1")
		if g, w := describe(wt, err), describe(uwt, uerr); g != w {
			t.Errorf("WithTag(%q) = %s, distribution/reference gives %s", s, g, w)
		}
	}
	// s as a tag and as a digest.
	base, _ := WithName("x")
	ubase, _ := upstream.WithName("x")
	wt, err := WithTag(base, s)
	uwt, uerr := upstream.WithTag(ubase, s)
	if g, w := describe(wt, err), describe(uwt, uerr); g != w {
		t.Errorf("WithTag(x, %q) = %s, distribution/reference gives %s", s, g, w)
	}
	wd, err := WithDigest(base, digest.Digest(s))
	uwd, uerr := upstream.WithDigest(ubase, digest.Digest(s))
	if g, w := describe(wd, err), describe(uwd, uerr); g != w {
		t.Errorf("WithDigest(x, %q) = %s, distribution/reference gives %s", s, g, w)
	}
}

// TestFamiliarMatch matches filters as `images --filter reference=` does.
func TestFamiliarMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, ref string
		want         bool
	}{
		{"busybox", "busybox:latest", true},
		{"busybox:*", "busybox:1", true},
		{"bus*", "docker.io/library/busybox:1", true},
		{"library/busybox", "busybox", false},
		{"localhost:5000/*", "localhost:5000/app:v1", true},
		{"other", "busybox", false},
	} {
		n, err := ParseNormalizedNamed(c.ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FamiliarMatch(c.pattern, n)
		un, _ := upstream.ParseNormalizedNamed(c.ref)
		want, uerr := upstream.FamiliarMatch(c.pattern, un)
		if got != c.want || got != want || (err == nil) != (uerr == nil) {
			t.Errorf("FamiliarMatch(%q, %q) = %v, %v; want %v (distribution/reference: %v, %v)", c.pattern, c.ref, got, err, c.want, want, uerr)
		}
	}
}
