// Package auth owns who may do what on berth's registry: authenticating a
// request (htpasswd basic auth with bcrypt, or bearer tokens of Docker's
// token flow) and checking the per-repository permissions of a config file.
package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// Actions on a repository.
const (
	Pull   = "pull"
	Push   = "push"
	Delete = "delete"
)

// Access is one permission a request needs: an action on a resource, as in
// Docker's token scopes ("repository:library/busybox:pull").
type Access struct {
	Type   string // "repository" or "registry"
	Name   string // repository name, or "catalog"
	Action string // pull, push, delete, or "*"
}

func (a Access) String() string { return a.Type + ":" + a.Name + ":" + a.Action }

// Scope words accesses as the scope parameter of a bearer challenge,
// grouping the actions of each resource.
func Scope(need []Access) string {
	var order []string
	actions := map[string][]string{}
	for _, a := range need {
		k := a.Type + ":" + a.Name
		if _, ok := actions[k]; !ok {
			order = append(order, k)
		}
		actions[k] = append(actions[k], a.Action)
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, k+":"+strings.Join(actions[k], ","))
	}
	return strings.Join(parts, " ")
}

// Authorizer decides whether a request may have the accesses it needs.
type Authorizer interface {
	// Authorize returns the name of the user behind r, or a *Challenge
	// error when r lacks credentials or permission.
	Authorize(r *http.Request, need []Access) (user string, err error)
}

// Challenge is a refusal: 401 with a WWW-Authenticate header to tell the
// client how to authenticate, or 403 when it did and may not.
type Challenge struct {
	Status int    // http.StatusUnauthorized or http.StatusForbidden
	Header string // WWW-Authenticate value, for 401
	Reason string
}

func (c *Challenge) Error() string { return fmt.Sprintf("%s (%d)", c.Reason, c.Status) }
