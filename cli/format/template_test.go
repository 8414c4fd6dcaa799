package format

import (
	"bytes"
	"strings"
	"testing"
)

// image is a row of `docker images`, as the CLI's image context shows it.
type image struct {
	Repository, Tag, ID, CreatedSince, Size string
	Labels                                  map[string]string
	Names                                   []string
}

const imagesTable = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

var imageHeaders = map[string]string{
	"Repository":   "REPOSITORY",
	"Tag":          "TAG",
	"ID":           "IMAGE ID",
	"CreatedSince": "CREATED",
	"Size":         "SIZE",
}

var images = []any{
	image{Repository: "busybox", Tag: "latest", ID: "beae173ccac6", CreatedSince: "2 weeks ago", Size: "4.26MB",
		Labels: map[string]string{"a": "1"}, Names: []string{"x", "y"}},
	image{Repository: "docker.io/library/alpine", Tag: "3.19", ID: "05455a08881e", CreatedSince: "About a minute ago", Size: "7.38MB"},
}

func TestTemplate(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		items        []any
		want         string
	}{
		{"default", "", images,
			"REPOSITORY                 TAG       IMAGE ID       CREATED              SIZE\n" +
				"busybox                    latest    beae173ccac6   2 weeks ago          4.26MB\n" +
				"docker.io/library/alpine   3.19      05455a08881e   About a minute ago   7.38MB\n"},
		{"table keyword", "table", images[:1],
			"REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n" +
				"busybox      latest    beae173ccac6   2 weeks ago   4.26MB\n"},
		{"empty table", "", nil,
			"REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"},
		{"custom table", `table {{.ID}}\t{{.Repository}}`, images,
			"IMAGE ID       REPOSITORY\n" +
				"beae173ccac6   busybox\n" +
				"05455a08881e   docker.io/library/alpine\n"},
		{"header fallback and header funcs", "table {{join .Names \", \"}}\t{{upper .Tag}}\t{{.Size}}", images[:1],
			"NAMES     TAG       SIZE\n" +
				"x, y      LATEST    4.26MB\n"},
		{"pad keeps header aligned", "table {{pad .Tag 2 0}}|", images[:1],
			"  TAG|\n" +
				"  latest|\n"},
		{"nested field header", "table {{.Labels.a}}\t{{.Tag}}", images[:1],
			"A         TAG\n" +
				"1         latest\n"},
		{"plain template", "{{.Repository}}:{{.Tag}}", images,
			"busybox:latest\ndocker.io/library/alpine:3.19\n"},
		{"plain template escapes", `{{.ID}}\t{{.Tag}}`, images[:1],
			"beae173ccac6\tlatest\n"},
		{"plain template no items", "{{.ID}}", nil, ""},
		{"json", "json", images[1:],
			`{"Repository":"docker.io/library/alpine","Tag":"3.19","ID":"05455a08881e","CreatedSince":"About a minute ago","Size":"7.38MB","Labels":null,"Names":null}` + "\n"},
		{"funcs", `{{lower "AbC"}} {{title "hello wide-world don't"}} {{truncate .ID 4}} {{json .Labels}} {{index (split .Repository "/") 0}} {{println .Tag}}`, images[:1],
			"abc Hello Wide-World Don'T beae {\"a\":\"1\"} busybox latest\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := Parse(tc.format, imagesTable, imageHeaders)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := tmpl.Execute(&b, tc.items); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	if _, err := Parse("{{.ID", "", nil); err == nil || !strings.HasPrefix(err.Error(), "template parsing error: template: :1: unclosed action") {
		t.Errorf("parse error: %v", err)
	}
	tmpl, err := Parse("table {{.ID}}\t{{.Nope}}", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, images)
	want := `template parsing error: template: :1:10: executing "" at <.Nope>: can't evaluate field Nope in type format.image`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if b.Len() != 0 {
		t.Errorf("wrote %q on error", b.String())
	}
}
