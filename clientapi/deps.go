package clientapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
)

// Deps are what the client API needs from the rest of the process.
type Deps struct {
	// Keystores resolve the SSL blocks. Required.
	Keystores *keystore.Manager
	// Authorizer answers for every authenticated request to a route.
	// Required when any virtual host has routes.
	Authorizer Authorizer
	// IdentityMinter builds the minter of a virtual host whose
	// identity.jwt names a keystore. Nil: such a configuration is refused.
	IdentityMinter func(IdentityJWT) (IdentityMinter, error)
	// Store is the state database the node's sessions are kept in.
	// Nil: a virtual host with a session solution is refused.
	Store *store.DB
	// Sessions tunes the session store (clock, bounds); its Now and
	// Logger default to this Deps' own.
	Sessions session.Options
	// Logger receives the audit and error lines. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the edgefort_clientapi_* metrics. Nil keeps
	// them unregistered.
	Registerer prom.Registerer
	// Ready is called from Run once every virtual host is bound.
	Ready func()
	// AuthAPI holds the tickets and session tokens the ticket and
	// session_module solutions read. Nil: such solutions are refused.
	AuthAPI *authapi.API
	// KeyPairs are the node's OIDC key pairs: the oidc solution decrypts
	// ID tokens with them. Nil: an oidc solution that requires encryption
	// is refused.
	KeyPairs *keystore.KeyPairs
	// Now is the clock of the solutions and the latency histogram. Nil
	// means time.Now.
	Now func() time.Time
}

// Authorizer decides whether a user may perform an action on a resource.
// agent adapts the control plane's decision cache to it.
type Authorizer interface {
	// Authorize answers r. A non-nil error comes with the decision to
	// apply all the same (a denial, unless the owner's policy serves a
	// stale allow).
	Authorize(ctx context.Context, r AuthzRequest) (Decision, error)
}

// AuthzRequest is one authorization question.
type AuthzRequest struct {
	UserID    string
	Directory string
	Groups    []string
	Action    string
	Resource  Resource
}

// Decision is an authorization answer.
type Decision struct {
	Allow bool
	// Reason is for the log only; it never reaches the client.
	Reason string
	// Source says where the answer came from (cloud, cache, stale,
	// unreachable, error).
	Source string
}

// IdentityMinter issues the node-signed identity JWT backends receive
// (package clientapi/backendjwt builds one).
type IdentityMinter interface {
	// Mint signs a token for id.
	Mint(id auth.Identity) (string, error)
	// Header is the request header the token travels in.
	Header() string
	// JWKS serves the public keys backends verify tokens with.
	JWKS() http.Handler
}
