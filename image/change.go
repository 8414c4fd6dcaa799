package image

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// ApplyChange applies one Dockerfile instruction to a config, as
// `docker import --change` and `docker commit --change` do. The instructions
// that only describe the image are allowed: CMD, ENTRYPOINT, ENV, EXPOSE,
// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
func ApplyChange(cfg *Config, change string) error {
	change = strings.TrimSpace(change)
	word, rest, _ := strings.Cut(change, " ")
	rest = strings.TrimSpace(rest)
	c := &cfg.Config
	bad := func(why string) error {
		return errdefs.InvalidArgument("invalid change %q: %s", change, why)
	}
	switch strings.ToUpper(word) {
	case "CMD":
		c.Cmd = commandForm(rest)
	case "ENTRYPOINT":
		c.Entrypoint = commandForm(rest)
	case "ENV", "LABEL":
		kvs, err := keyValues(rest, strings.ToUpper(word) == "ENV")
		if err != nil {
			return bad(err.Error())
		}
		for _, kv := range kvs {
			if strings.ToUpper(word) == "ENV" {
				c.Env = setEnv(c.Env, kv[0], kv[1])
			} else {
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[kv[0]] = kv[1]
			}
		}
	case "EXPOSE":
		for _, p := range strings.Fields(rest) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			if c.ExposedPorts == nil {
				c.ExposedPorts = map[string]struct{}{}
			}
			c.ExposedPorts[p] = struct{}{}
		}
	case "VOLUME":
		vols := listForm(rest)
		for _, v := range vols {
			if c.Volumes == nil {
				c.Volumes = map[string]struct{}{}
			}
			c.Volumes[v] = struct{}{}
		}
	case "USER":
		c.User = rest
	case "WORKDIR":
		if !strings.HasPrefix(rest, "/") {
			rest = strings.TrimSuffix(c.WorkingDir, "/") + "/" + rest
		}
		c.WorkingDir = rest
	case "STOPSIGNAL":
		c.StopSignal = rest
	case "ONBUILD":
		c.OnBuild = append(c.OnBuild, rest)
	case "":
		return bad("empty instruction")
	default:
		return bad(fmt.Sprintf("%s is not a valid change command", word))
	}
	return nil
}

// commandForm reads the exec form (a JSON array) or the shell form.
func commandForm(s string) []string {
	if strings.HasPrefix(s, "[") {
		var args []string
		if json.Unmarshal([]byte(s), &args) == nil {
			return args
		}
	}
	return []string{"/bin/sh", "-c", s}
}

func listForm(s string) []string {
	if strings.HasPrefix(s, "[") {
		var l []string
		if json.Unmarshal([]byte(s), &l) == nil {
			return l
		}
	}
	return strings.Fields(s)
}

// keyValues reads `k=v k2="v 2"` or, for ENV, the legacy `k v`.
func keyValues(s string, legacy bool) ([][2]string, error) {
	words, err := splitWords(s)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("missing key")
	}
	if legacy && !strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(s, " ")
		return [][2]string{{k, strings.TrimSpace(v)}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitWords splits on blanks, honoring double and single quotes and
// backslash escapes.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	var quote rune
	in := false
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc = true
			in = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote = r
			in = true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}
