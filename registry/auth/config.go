package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/errdefs"
)

// Config configures authentication and permissions. With neither Htpasswd
// nor Token set, the registry is open to everyone.
type Config struct {
	// Htpasswd is an htpasswd file of bcrypt hashes ("user:$2y$...").
	// With Token unset, clients authenticate with HTTP basic auth.
	Htpasswd string `json:"htpasswd,omitempty"`
	// Realm is the basic-auth realm (default "berth-registry").
	Realm string `json:"realm,omitempty"`
	// Token enables bearer tokens (Docker's token flow).
	Token *TokenConfig `json:"token,omitempty"`
	// Access lists who may do what. Without rules every authenticated
	// user may do everything.
	Access []Rule `json:"access,omitempty"`
}

// Rule grants actions on the repositories matching a pattern to users.
type Rule struct {
	// Repository is a path.Match pattern ("library/*"), or "**" for all.
	Repository string `json:"repository"`
	// Users are user names; "*" is any authenticated user, "anonymous"
	// is a client without credentials.
	Users []string `json:"users"`
	// Actions are pull, push, delete, or "*" for all.
	Actions []string `json:"actions"`
}

// Anonymous is the user name of a client without credentials.
const Anonymous = "anonymous"

// Auth authorizes requests as its Config says.
type Auth struct {
	cfg   Config
	users map[string][]byte // user -> bcrypt hash
	token *tokenAuth
}

// New builds an Auth from cfg. It returns nil (no authorization) when cfg
// configures none.
func New(cfg Config) (*Auth, error) {
	if cfg.Htpasswd == "" && cfg.Token == nil {
		return nil, nil
	}
	if cfg.Realm == "" {
		cfg.Realm = "berth-registry"
	}
	a := &Auth{cfg: cfg, users: map[string][]byte{}}
	if cfg.Htpasswd != "" {
		users, err := LoadHtpasswd(cfg.Htpasswd)
		if err != nil {
			return nil, err
		}
		a.users = users
	}
	if cfg.Token != nil {
		t, err := newTokenAuth(*cfg.Token)
		if err != nil {
			return nil, err
		}
		a.token = t
	}
	for _, r := range cfg.Access {
		if _, err := path.Match(r.Repository, ""); err != nil {
			return nil, errdefs.InvalidArgument("access rule %q: %v", r.Repository, err)
		}
	}
	return a, nil
}

// LoadHtpasswd reads an htpasswd file. Only bcrypt hashes are accepted:
// the other htpasswd schemes (MD5, SHA1, crypt) are too weak to keep.
func LoadHtpasswd(file string) (map[string][]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, errdefs.InvalidArgument("htpasswd %s:%d: want user:hash", file, n)
		}
		if !strings.HasPrefix(hash, "$2") {
			return nil, errdefs.InvalidArgument("htpasswd %s:%d: user %q: only bcrypt hashes are supported (htpasswd -B)", file, n, user)
		}
		users[user] = []byte(hash)
	}
	return users, nil
}

// checkPassword reports whether user's password is pass.
func (a *Auth) checkPassword(user, pass string) bool {
	h, ok := a.users[user]
	if !ok {
		// Spend the same time as for a known user.
		bcrypt.CompareHashAndPassword([]byte("$2a$10$abcdefghijklmnopqrstuuIxkxUZ8a8cV39tB4Tw1Ybn7p9NcuL2."), []byte(pass))
		return false
	}
	return bcrypt.CompareHashAndPassword(h, []byte(pass)) == nil
}

// allowed returns which of the wanted actions on resource user may do.
func (a *Auth) allowed(user string, acc Access) bool {
	if acc.Type == "registry" {
		// The catalog: anyone authenticated, when no rules restrict.
		if len(a.cfg.Access) == 0 {
			return user != Anonymous
		}
		return a.granted(user, "**", "*")
	}
	if len(a.cfg.Access) == 0 {
		return user != Anonymous
	}
	return a.granted(user, acc.Name, acc.Action)
}

func (a *Auth) granted(user, repo, action string) bool {
	for _, r := range a.cfg.Access {
		if !slices.Contains(r.Users, user) && (user == Anonymous || !slices.Contains(r.Users, "*")) {
			continue
		}
		if r.Repository != "**" {
			if repo == "**" {
				continue // the catalog needs a rule on every repository
			}
			if ok, _ := path.Match(r.Repository, repo); !ok {
				continue
			}
		}
		if slices.Contains(r.Actions, "*") || slices.Contains(r.Actions, action) {
			return true
		}
	}
	return false
}

// anonymousAllowed reports whether some rule grants anything to clients
// without credentials.
func (a *Auth) anonymousAllowed() bool {
	for _, r := range a.cfg.Access {
		if slices.Contains(r.Users, Anonymous) {
			return true
		}
	}
	return false
}

// Authorize implements Authorizer.
func (a *Auth) Authorize(r *http.Request, need []Access) (string, error) {
	if a.token != nil {
		return a.authorizeBearer(r, need)
	}
	user := Anonymous
	if u, p, ok := r.BasicAuth(); ok {
		if !a.checkPassword(u, p) {
			return "", &Challenge{Status: http.StatusUnauthorized, Header: a.basicChallenge(), Reason: "invalid username or password"}
		}
		user = u
	}
	for _, acc := range need {
		if !a.allowed(user, acc) {
			if user == Anonymous {
				return "", &Challenge{Status: http.StatusUnauthorized, Header: a.basicChallenge(), Reason: "authentication required"}
			}
			return "", &Challenge{Status: http.StatusForbidden, Reason: fmt.Sprintf("%s may not %s", user, acc)}
		}
	}
	if len(need) == 0 && user == Anonymous && !a.anonymousAllowed() {
		// The /v2/ ping tells clients that credentials are needed.
		return "", &Challenge{Status: http.StatusUnauthorized, Header: a.basicChallenge(), Reason: "authentication required"}
	}
	return user, nil
}

func (a *Auth) basicChallenge() string { return fmt.Sprintf("Basic realm=%q", a.cfg.Realm) }

// TokenHandler returns the handler of the registry's own token endpoint,
// or nil when the registry does not issue tokens.
func (a *Auth) TokenHandler() http.Handler {
	if a == nil || a.token == nil || a.token.key == nil {
		return nil
	}
	return http.HandlerFunc(a.serveToken)
}
