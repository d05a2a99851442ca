// Package auth is the seam between the client API and its authentication
// solutions (JWT, anonymous, ticket, session, header, SAML, OIDC): what a
// solution is given, what it answers, the identity it produces, and the
// paths of its own it serves on a virtual host. It holds types only, so
// that clientapi and every solution package import it and none imports
// another.
package auth

import (
	"net/http"
	"time"
)

// Identity is the user a request acts for, as a solution established it.
type Identity struct {
	// UserID is the user's id in Directory. Never empty once
	// authenticated.
	UserID string
	// Directory is the user directory (identity provider) UserID belongs
	// to.
	Directory string
	// Groups feed authorization.
	Groups []string
	// Attributes are further claims a solution mapped, for authorization.
	Attributes map[string][]string
	// Anonymous marks the configured anonymous identity: only routes that
	// admit anonymous users accept it.
	Anonymous bool
	// Solution names the solution that authenticated the request (its
	// configured name, else its kind).
	Solution string
	// Expires is when the credential stops being valid; zero when it has no
	// end of its own.
	Expires time.Time
	// IdPSession names the login at the identity provider this identity
	// came from, when the solution can end it later (SAML single logout);
	// nil otherwise. The node's session keeps it.
	IdPSession *IdPSession
}

// IdPSession is a login at an identity provider as the node must name it
// to end it (SAML single logout: the LogoutRequest's NameID and
// SessionIndex), and the solution (which IdP of the virtual host) it
// belongs to.
type IdPSession struct {
	Solution        string `json:"solution"`
	NameID          string `json:"name_id"`
	NameIDFormat    string `json:"name_id_format,omitempty"`
	NameQualifier   string `json:"name_qualifier,omitempty"`
	SPNameQualifier string `json:"sp_name_qualifier,omitempty"`
	SessionIndex    string `json:"session_index,omitempty"`
}

// Outcome is what a solution made of a request.
type Outcome int

const (
	// NoCredentials: the request carries nothing this solution reads; the
	// chain asks the next solution.
	NoCredentials Outcome = iota
	// Authenticated: Result.Identity is the user; the chain stops.
	Authenticated
	// Refused: the request carried credentials for this solution and they
	// failed (bad signature, expired, ...). The chain stops: 401.
	Refused
)

func (o Outcome) String() string {
	switch o {
	case NoCredentials:
		return "no_credentials"
	case Authenticated:
		return "authenticated"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Result is a solution's answer for one request.
type Result struct {
	Outcome  Outcome
	Identity Identity
	// Reason is a short, stable id for a refusal ("token_expired",
	// "bad_signature", "unknown_kid"): it goes into the audit log, the
	// metrics and the 401's body. It never carries token content.
	Reason string
	// Err is the refusal's detail for the log only, never sent to the
	// client. It must not contain a token, a secret or a key.
	Err error
	// StartSession asks the client API to open one of the node's sessions
	// for Identity and set its cookie: interactive logins (ticket, SAML,
	// OIDC) end so, while per-request credentials (JWT, header) do not.
	StartSession bool
	// Redirect, when set on an Authenticated result, answers the request
	// with 303 See Other to this URL (after the session cookie, if any)
	// instead of serving it: a ticket login sends the browser on to its
	// target without the ticket. The solution has checked the URL against
	// the node's virtual hosts and its allow-list (no open redirects).
	Redirect string
	// Cached: the solution authenticated the request from its cache of
	// credentials it verified before; the decision is the one it made
	// then, not a new one (the client API audits it at debug level and
	// counts it).
	Cached bool
}

// Challenger is a solution that can send an unauthenticated browser to
// log in (an authentication module, an IdP). When no solution of the
// chain finds credentials and the request accepts text/html, the first
// Challenger that answers ok gets the browser redirected to url (which
// carries the original URL to come back to); API clients get 401.
type Challenger interface {
	Challenge(r *http.Request) (url string, ok bool)
}

// Endpoint is a path a solution serves on its virtual host, outside the
// routes and before any authentication: a metadata page, a key set, the
// start or the end of a login. Exactly one of Handler, Login and Start is
// set.
type Endpoint struct {
	// Pattern is the net/http ServeMux pattern, e.g.
	// "POST /.edgefort/saml/acs".
	Pattern string
	// Handler serves the path itself.
	Handler http.Handler
	// Login ends an interactive login (an assertion consumer service, an
	// OIDC callback) and returns its result; unlike Authenticate it may
	// read the body (bounded). The client API treats the result as the
	// chain's: audited, a refusal counted against the client's
	// failed-authentication limit (401), a session opened and the browser
	// redirected on success (to "/" when the result names no page). A
	// result without credentials is answered 400 with its Reason.
	Login func(w http.ResponseWriter, r *http.Request) Result
	// Start makes the path a login start (GET ?return_to=/page): the
	// client API checks return_to (a page of this virtual host) and sends
	// the browser to the solution's Challenge for that page. The solution
	// must be a Challenger.
	Start bool
}

// Endpoints is a solution with paths of its own on the virtual host; the
// client API registers them once the chain is built, and two solutions on
// the same pattern are a configuration error.
type Endpoints interface {
	Endpoints() []Endpoint
}

// LoginLink is an interactive solution a browser can be sent to by a
// link, GET LoginPath()?return_to=/page: when a virtual host has more
// than one, a browser without credentials chooses on a page listing each
// by DisplayName.
type LoginLink interface {
	LoginPath() string
	DisplayName() string
}

// SingleLogout is a solution that can end, at its identity provider, the
// login a node session came from (SAML single logout). The client API
// serves LogoutPath (POST, with the session's CSRF token): it ends the
// node session, then sends the browser to the URL StartLogout gives.
type SingleLogout interface {
	LogoutPath() string
	// StartLogout returns where to send the browser to end s at the
	// identity provider and come back to returnTo (a path of this virtual
	// host).
	StartLogout(s IdPSession, returnTo string) (string, error)
}

// Solution authenticates requests in one way. Authenticate must be safe
// for concurrent use, must not read the request body, and must bound
// whatever it reads from the request (header sizes are already bounded by
// the server).
type Solution interface {
	// Kind is the solution type as configured: "jwt", "anonymous", ...
	Kind() string
	// Name is the configured name, or Kind when none was given.
	Name() string
	Authenticate(r *http.Request) Result
}

// FieldError is a setting that cannot be used as it is, named by its
// configuration path relative to the section the component was given
// (e.g. "jwks_url"); the owner prefixes its own path and places it in the
// file.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }
