package clientapi

import (
	"net/http"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// anonymousSolution gives every request the configured anonymous identity.
// The chain uses it only when no other solution found credentials, and only
// on routes that admit anonymous users.
type anonymousSolution struct {
	name string
	id   auth.Identity
}

func newAnonymous(c Anonymous) *anonymousSolution {
	name := orDefault(c.Name, DefaultAnonymousName)
	return &anonymousSolution{name: name, id: auth.Identity{
		UserID:    orDefault(c.UserID, DefaultAnonymousUserID),
		Directory: orDefault(c.Directory, DefaultAnonymousDirectory),
		Groups:    c.Groups,
		Anonymous: true,
		Solution:  name,
	}}
}

func (a *anonymousSolution) Kind() string { return "anonymous" }
func (a *anonymousSolution) Name() string { return a.name }

func (a *anonymousSolution) Authenticate(*http.Request) auth.Result {
	return auth.Result{Outcome: auth.Authenticated, Identity: a.id}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

var _ auth.Solution = (*anonymousSolution)(nil)
