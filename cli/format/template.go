// Package format owns how berth's CLI prints things, byte for byte as the
// docker CLI does: the --format Go templates of list commands (default
// tables, "table ..." with derived headers, "json", free templates), the
// JSON or template output of inspect commands, the human units of sizes,
// ages and short IDs. It is pure: it formats values it is given and never talks to the
// engine.
package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"text/template/parse"
)

const (
	tableKey = "table"
	jsonKey  = "json"
)

// funcs are the template functions docker offers to every --format
// template, on top of text/template's builtins (println, index, printf...).
var funcs = template.FuncMap{
	"json":     jsonString,
	"split":    strings.Split,
	"join":     strings.Join,
	"title":    title,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      pad,
	"truncate": truncate,
}

// headerFuncs replace funcs when a table's header row is rendered: the
// header shows column names untouched, except that pad still pads so the
// header stays aligned with its column.
var headerFuncs = template.FuncMap{
	"json":     func(v any) any { return v },
	"split":    func(v any, _ string) any { return v },
	"join":     func(v any, _ string) any { return v },
	"title":    func(v any) any { return v },
	"lower":    func(v any) any { return v },
	"upper":    func(v any) any { return v },
	"truncate": func(v any, _ int) any { return v },
}

// jsonString encodes v on one line without HTML escaping.
func jsonString(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(b.String())
}

// title upper-cases the first letter of each word, as the deprecated
// strings.Title docker uses does for ASCII.
func title(s string) string {
	b := []byte(s)
	start := true
	for i, c := range b {
		if start && c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		start = !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80)
	}
	return string(b)
}

// pad surrounds a non-empty s with prefix and suffix spaces.
func pad(s string, prefix, suffix int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
}

// truncate keeps the first n bytes of s.
func truncate(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// newTemplate parses text with docker's functions; errors read as docker's
// ("template parsing error: template: :1: ...").
func newTemplate(text string) (*template.Template, error) {
	t, err := template.New("").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return t, nil
}

// Template is a parsed --format of a list command.
type Template struct {
	tmpl    *template.Template
	table   bool
	headers map[string]string
}

// Parse parses a list command's --format the way docker does:
//
//   - "" or "table": defaultTable, which is always a table (with or
//     without its leading "table");
//   - "table {{.ID}}\t{{.Name}}": a table whose header row names each
//     field, headers[field] or else the field name upper-cased;
//   - "json": each item as one line of JSON;
//   - anything else: a Go template printed once per item.
//
// Literal `\t` and `\n` in format stand for a tab and a newline.
func Parse(format, defaultTable string, headers map[string]string) (*Template, error) {
	if format == "" || format == tableKey {
		format = defaultTable
		if !strings.HasPrefix(format, tableKey) {
			format = tableKey + " " + format
		}
	}
	t := &Template{headers: headers}
	text := format
	switch {
	case strings.HasPrefix(format, tableKey):
		t.table = true
		text = format[len(tableKey):]
	case format == jsonKey:
		text = "{{json .}}"
	}
	text = strings.Trim(text, " ")
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(text)
	tmpl, err := newTemplate(text)
	if err != nil {
		return nil, err
	}
	t.tmpl = tmpl
	return t, nil
}

// IsTable reports whether t prints a header row and aligned columns.
func (t *Template) IsTable() bool { return t.table }

// Execute prints items, one per line, under a header row if t is a table.
// Every row is rendered before anything is written, so a template error
// (as docker words it) leaves w untouched.
func (t *Template) Execute(w io.Writer, items []any) error {
	var rows bytes.Buffer
	for _, it := range items {
		if err := t.tmpl.Execute(&rows, it); err != nil {
			return fmt.Errorf("template parsing error: %w", err)
		}
		rows.WriteByte('\n')
	}
	if !t.table {
		_, err := rows.WriteTo(w)
		return err
	}
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	var head bytes.Buffer
	// Like docker, a header that cannot be rendered is printed as far as
	// it got: the rows are what matters.
	if h, err := t.tmpl.Clone(); err == nil {
		_ = h.Funcs(headerFuncs).Execute(&head, t.headerData())
	}
	head.WriteByte('\n')
	if _, err := head.WriteTo(tw); err != nil {
		return err
	}
	if _, err := rows.WriteTo(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// headerData builds the value a table's header row is rendered with: a map
// from each field the template reads (.A, or .A.B as nested maps) to its
// column name.
func (t *Template) headerData() map[string]any {
	data := map[string]any{}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			t.addHeader(data, n.Ident)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
		}
	}
	walk(t.tmpl.Root)
	return data
}

func (t *Template) addHeader(data map[string]any, ident []string) {
	for i, name := range ident {
		if i == len(ident)-1 {
			if _, ok := data[name]; !ok {
				data[name] = t.header(strings.Join(ident, "."), name)
			}
			return
		}
		sub, ok := data[name].(map[string]any)
		if !ok {
			if _, taken := data[name]; taken {
				return
			}
			sub = map[string]any{}
			data[name] = sub
		}
		data = sub
	}
}

// header names the column of field path (its last element being name).
func (t *Template) header(path, name string) string {
	if h, ok := t.headers[path]; ok {
		return h
	}
	if h, ok := t.headers[name]; ok {
		return h
	}
	return strings.ToUpper(name)
}
