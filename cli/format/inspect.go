package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/template"
)

// Inspect prints objs as docker inspect does. An empty format prints them
// as a JSON array indented by four spaces ("[]" when there are none);
// "json" prints the array on one line; any other format is a Go template
// executed once per object, one line each. An object the template cannot
// be executed on directly is retried on its JSON form (so {{.Id}} finds a
// field tagged `json:"Id"`); objects that still fail are skipped and their
// errors returned together, after the others are printed.
func Inspect(w io.Writer, objs []any, format string) error {
	switch format {
	case "", jsonKey:
		if len(objs) == 0 {
			_, err := io.WriteString(w, "[]\n")
			return err
		}
		var b []byte
		var err error
		if format == "" {
			b, err = json.MarshalIndent(objs, "", "    ")
		} else {
			b, err = json.Marshal(objs)
		}
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	tmpl, err := newTemplate(format)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	var errs []string
	for _, obj := range objs {
		var b bytes.Buffer
		if err := tmpl.Execute(&b, obj); err != nil {
			b.Reset()
			if err := executeRaw(&b, tmpl, obj); err != nil {
				errs = append(errs, err.Error())
				continue
			}
		}
		out.Write(b.Bytes())
		out.WriteByte('\n')
	}
	if out.Len() == 0 {
		out.WriteByte('\n')
	}
	if _, err := out.WriteTo(w); err != nil {
		return err
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// executeRaw runs tmpl on obj's JSON form, where a missing key is an error.
func executeRaw(w io.Writer, tmpl *template.Template, obj any) error {
	raw, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("unable to read inspect data: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("unable to read inspect data: %w", err)
	}
	strict, err := tmpl.Clone()
	if err != nil {
		return err
	}
	if err := strict.Option("missingkey=error").Execute(w, v); err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	return nil
}
