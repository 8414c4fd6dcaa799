package filters

import (
	"reflect"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		allowed []string
		want    Args
		err     string
	}{
		{args: nil, want: Args{}},
		{args: []string{"dangling=true", " Label = a=b ", "label=c", "label=c", ""},
			allowed: []string{"dangling", "label"},
			want:    Args{"dangling": {"true"}, "label": {"a=b", "c"}}},
		{args: []string{"anything=x", "empty="}, want: Args{"anything": {"x"}, "empty": {""}}},
		{args: []string{"foo=bar"}, allowed: []string{"dangling"}, err: "invalid filter 'foo'"},
		{args: []string{"foo=bar", "dangling"}, allowed: []string{"dangling"}, err: "bad format of filter (expected name=value)"},
	} {
		f, err := Parse(tc.args, tc.allowed...)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%q: error %v, want %s", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(f, tc.want) {
			t.Errorf("%q: got %v, %v, want %v", tc.args, f, err, tc.want)
		}
	}
}

func TestFiltersMatch(t *testing.T) {
	f := Args{"name": {"web", "^db-[0-9]+$"}}
	for _, tc := range []struct {
		key, value string
		want       bool
	}{
		{"name", "web", true},
		{"name", "my-web-1", true}, // regular expression, unanchored
		{"name", "db-12", true},
		{"name", "db-x", false},
		{"status", "anything", true}, // no filter on status
	} {
		if got := f.Match(tc.key, tc.value); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.key, tc.value, got)
		}
	}
	if !f.Has("name") || f.Has("status") || len(f.Get("name")) != 2 || f.Get("status") != nil {
		t.Error("Has/Get")
	}
}

func TestFiltersBool(t *testing.T) {
	for _, tc := range []struct {
		values   []string
		val, set bool
		err      string
	}{
		{values: nil},
		{values: []string{"true"}, val: true, set: true},
		{values: []string{"1"}, val: true, set: true},
		{values: []string{"false"}, set: true},
		{values: []string{"0", "false"}, set: true},
		{values: []string{"maybe"}, set: true, err: "invalid filter 'dangling=[maybe]'"},
		{values: []string{"true", "0"}, set: true, err: "invalid filter 'dangling=[true 0]'"},
	} {
		f := Args{}
		if tc.values != nil {
			f["dangling"] = tc.values
		}
		val, set, err := f.Bool("dangling")
		if val != tc.val || set != tc.set || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("%q: got %v %v %v", tc.values, val, set, err)
		}
	}
}

func TestFiltersMatchLabels(t *testing.T) {
	labels := map[string]string{"env": "prod", "team": ""}
	for _, tc := range []struct {
		filters []string
		labels  map[string]string
		want    bool
	}{
		{nil, labels, true},
		{[]string{"env"}, labels, true},
		{[]string{"env=prod", "team"}, labels, true},
		{[]string{"team="}, labels, true},
		{[]string{"env=dev"}, labels, false},
		{[]string{"env", "owner"}, labels, false},
		{[]string{"env"}, nil, false},
	} {
		f := Args{}
		if tc.filters != nil {
			f["label"] = tc.filters
		}
		if got := f.MatchLabels(tc.labels); got != tc.want {
			t.Errorf("%q: got %v", tc.filters, got)
		}
	}
}

func TestFiltersMatchReference(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		ref      string
		want     bool
	}{
		{nil, "busybox:latest", true},
		{[]string{"busybox"}, "busybox:latest", true},
		{[]string{"busybox"}, "docker.io/library/busybox:latest", true},
		{[]string{"busybox*"}, "docker.io/library/busybox:1.36", true},
		{[]string{"busybox:1.*"}, "busybox:1.36", true},
		{[]string{"busybox:1.*"}, "busybox:latest", false},
		{[]string{"library/busybox"}, "busybox:latest", false},
		{[]string{"alpine", "bus*"}, "busybox", true},
		{[]string{"*/app"}, "ghcr.io/acme/app:v1", false},
		{[]string{"ghcr.io/*/app"}, "ghcr.io/acme/app:v1", true},
		{[]string{"busy*"}, "Not A Ref", false},
		{[]string{"<none>*"}, "<none>:<none>", true},
	} {
		f := Args{}
		if tc.patterns != nil {
			f["reference"] = tc.patterns
		}
		if got := f.MatchReference(tc.ref); got != tc.want {
			t.Errorf("%q ~ %q: got %v", tc.patterns, tc.ref, got)
		}
	}
}
