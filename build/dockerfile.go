package build

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/berth-dev/berth/errdefs"
)

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	name     string
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
}

// parseDockerfile reads the Dockerfile with BuildKit's parser and
// instructions packages. Errors name the file and the line.
func parseDockerfile(name string, text []byte) (*dockerfile, error) {
	if name == "" {
		name = "Dockerfile"
	}
	res, err := parser.Parse(bytes.NewReader(text))
	if err != nil {
		return nil, located(name, err)
	}
	lint := linter.New(&linter.Config{SkipAll: true})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, located(name, err)
	}
	if len(stages) == 0 {
		return nil, errdefs.InvalidArgument("%s: the Dockerfile has no FROM instruction", name)
	}
	return &dockerfile{name: name, stages: stages, metaArgs: metaArgs, escape: res.EscapeToken}, nil
}

var parseErrLine = regexp.MustCompile(`^dockerfile parse error on line (\d+): `)

// located words a parse error as `Dockerfile:3: unknown instruction: FOO`.
func located(name string, err error) error {
	msg := err.Error()
	line := 0
	if m := parseErrLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(msg, m[0])
	}
	var le *parser.LocationError
	if line == 0 && errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	var ue *instructions.UnknownInstructionError
	if errors.As(err, &ue) && ue.Line > 0 {
		line = ue.Line
	}
	if line > 0 {
		return errdefs.InvalidArgument("%s:%d: %s", name, line, msg)
	}
	return errdefs.InvalidArgument("%s: %s", name, msg)
}

// lineOf returns the first line of cmd in the Dockerfile, or 0.
func lineOf(cmd instructions.Command) int {
	if loc := cmd.Location(); len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

// expander expands words against env as the Dockerfile's shell rules say,
// with escape as the escape character. Each expander has a lexer of its
// own: a shell.Lex is not safe for concurrent use, and stages run in
// parallel.
func expander(escape rune, env []string) instructions.SingleWordExpander {
	lex := shell.NewLex(escape)
	getter := shell.EnvsFromSlice(env)
	return func(word string) (string, error) {
		s, _, err := lex.ProcessWord(word, getter)
		return s, err
	}
}

// stageIndex finds a stage by name (case-insensitively) or by number.
func (df *dockerfile) stageIndex(name string, before int) (int, bool) {
	if i, ok := instructions.HasStage(df.stages[:before], name); ok {
		return i, true
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < before {
		return n, true
	}
	return -1, false
}

// describe names a stage in progress lines: its name, or stage-N.
func (df *dockerfile) describe(i int) string {
	if n := df.stages[i].Name; n != "" {
		return n
	}
	return fmt.Sprintf("stage-%d", i)
}
