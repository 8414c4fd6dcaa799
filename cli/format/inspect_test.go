package format

import (
	"bytes"
	"testing"
)

type config struct {
	Image string
	Env   []string
}

// inspected has Go names that differ from its JSON names, as berth's API
// types may.
type inspected struct {
	ID     string  `json:"Id"`
	Config *config `json:"Config"`
}

func TestInspect(t *testing.T) {
	a := inspected{ID: "sha256:aaa", Config: &config{Image: "busybox", Env: []string{"A=<b>"}}}
	b := inspected{ID: "sha256:bbb", Config: &config{}}
	for _, tc := range []struct {
		name, format string
		objs         []any
		want         string
	}{
		{"pretty", "", []any{a},
			"[\n    {\n        \"Id\": \"sha256:aaa\",\n        \"Config\": {\n            \"Image\": \"busybox\",\n" +
				"            \"Env\": [\n                \"A=\\u003cb\\u003e\"\n            ]\n        }\n    }\n]\n"},
		{"pretty none", "", nil, "[]\n"},
		{"json", "json", []any{b},
			`[{"Id":"sha256:bbb","Config":{"Image":"","Env":null}}]` + "\n"},
		{"json none", "json", nil, "[]\n"},
		{"go field", "{{.ID}}", []any{a, b}, "sha256:aaa\nsha256:bbb\n"},
		{"json field by fallback", "{{.Id}} {{.Config.Image}}", []any{a}, "sha256:aaa busybox\n"},
		{"json func", "{{json .Config}}", []any{a}, `{"Image":"busybox","Env":["A=<b>"]}` + "\n"},
		{"template none", "{{.ID}}", nil, "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Inspect(&out, tc.objs, tc.format); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", out.String(), tc.want)
			}
		})
	}
}

func TestInspectErrors(t *testing.T) {
	var out bytes.Buffer
	err := Inspect(&out, nil, "{{.Id")
	if want := "template parsing error: template: :1: unclosed action"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}

	// An object the template fails on is skipped; the others are printed.
	out.Reset()
	objs := []any{inspected{ID: "x"}, map[string]any{"Id": "y", "Nope": 1}}
	err = Inspect(&out, objs, "{{.Nope}}")
	if want := `template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if out.String() != "1\n" {
		t.Errorf("printed %q", out.String())
	}
}
