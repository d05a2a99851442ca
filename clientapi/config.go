package clientapi

import (
	"time"

	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/clientapi/backendjwt"
	"github.com/edgefort/edgefort/clientapi/headerauth"

	"github.com/edgefort/edgefort/clientapi/jwtauth"
	"github.com/edgefort/edgefort/clientapi/oidcauth"
	"github.com/edgefort/edgefort/clientapi/samlauth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/keystore"
)

// Defaults, named once: agent/config fills them in, and New fills the same
// ones into zero fields so that a Config built in code works too.
const (
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultIdleTimeout         = 2 * time.Minute
	DefaultDrainTimeout        = 5 * time.Second
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultMaxRequestBodyBytes = 1 << 30
	DefaultFailedAuthPerSecond = 1.0
	DefaultFailedAuthBurst     = 20
	DefaultRouteTimeout        = 60 * time.Second
	DefaultUserIDHeader        = "X-Edgefort-User"
	DefaultDirectoryHeader     = "X-Edgefort-Directory"
	DefaultGroupsHeader        = "X-Edgefort-Groups"
	DefaultAnonymousHeader     = "X-Edgefort-Anonymous"
	DefaultIdentityJWTHeader   = "X-Edgefort-Identity"
	DefaultIdentityJWTTTL      = 60 * time.Second
	DefaultAnonymousName       = "anonymous"
	DefaultAnonymousUserID     = "anonymous"
	DefaultAnonymousDirectory  = "anonymous"
)

// Config is the configuration's clients section: the virtual hosts clients
// connect to and the local backends their routes lead to (agent/config
// composes it).
type Config struct {
	// VirtualHosts are the listeners clients connect to.
	VirtualHosts []VirtualHost `yaml:"virtual_hosts"`
	// TargetEndpoints are the local backends requests are proxied to.
	TargetEndpoints []TargetEndpoint `yaml:"target_endpoints"`
	// AuthAPI is the two-way TLS API where authentication modules get
	// tickets and portals register sessions; the ticket and
	// session_module solutions need it. The agent runs it; a reload does
	// not change it.
	AuthAPI authapi.Config `yaml:"auth_api"`
}

// AuthAPI is the authentication API's section; authapi owns it.
type AuthAPI = authapi.Config

// Addresses are host:port pairs; the file may give one as a plain string.
type Addresses []string

// VirtualHost is one inbound server: the clients.virtual_hosts entry.
type VirtualHost struct {
	// Name identifies the virtual host. Required, unique.
	Name string `yaml:"name"`
	// Listen are the host:port addresses on the private network, each
	// bound. Required.
	Listen Addresses `yaml:"listen"`
	// AllowWildcard permits an address that binds every interface
	// (0.0.0.0, [::] or an empty host); a warning is logged. Default false.
	AllowWildcard bool `yaml:"allow_wildcard"`
	// HostAliases are the Host header values this virtual host answers.
	// Empty answers any.
	HostAliases []string `yaml:"host_aliases"`
	// SSL is the inbound TLS block.
	SSL keystore.SSL `yaml:"ssl"`
	// HTTP2 offers HTTP/2 through ALPN (TLS only). Default true.
	HTTP2 *bool `yaml:"http2"`
	// Timeouts bound slow clients.
	Timeouts Timeouts `yaml:"timeouts"`
	// Limits bound what a client may send.
	Limits Limits `yaml:"limits"`
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For
	// and Forwarded headers are kept and extended. Default none: what a
	// client sends there is replaced by its real address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// FailedAuthLimit rate-limits refused authentications per client
	// address: beyond it the address gets 429 until it slows down.
	FailedAuthLimit RateLimit `yaml:"failed_auth_limit"`
	// Authentication is the ordered chain of solutions: the first that
	// finds its credentials in a request decides.
	Authentication []Solution `yaml:"authentication"`
	// Identity says how the authenticated user reaches the backends.
	Identity Identity `yaml:"identity"`
	// Routes map requests to target endpoints; /healthz is always served.
	Routes []Route `yaml:"routes"`
}

// Timeouts of a virtual host. There is no whole-request timeout: bodies
// stream both ways for as long as they last.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers. Default 10s.
	ReadHeader time.Duration `yaml:"read_header"`
	// Idle closes keep-alive connections idle this long. Default 2m.
	Idle time.Duration `yaml:"idle"`
	// Drain is how long requests in flight may finish when the virtual host
	// stops or is removed by a reload. Default 5s; it must be shorter than
	// supervisor.shutdown_timeout (default 10s), which bounds the whole
	// stop.
	Drain time.Duration `yaml:"drain"`
}

// Limits of a virtual host.
type Limits struct {
	// MaxHeaderBytes bounds a request's header block. Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxRequestBodyBytes bounds a request body; longer ones fail with 413.
	// Default 1 GiB.
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	// PerSecond is the sustained rate. Default 1.
	PerSecond float64 `yaml:"per_second"`
	// Burst is how many may come at once. Default 20.
	Burst int `yaml:"burst"`
}

// Solution is one entry of the authentication chain: exactly one field is
// set.
type Solution struct {
	// JWT verifies bearer tokens (or a cookie).
	JWT *jwtauth.Config `yaml:"jwt"`
	// Anonymous admits requests without credentials as a fixed identity,
	// on routes that allow it.
	Anonymous *Anonymous `yaml:"anonymous"`
	// Header takes the user from headers a trusted reverse proxy sets.
	Header *headerauth.Config `yaml:"header"`
	// Session reads the node's session cookie, and configures the
	// sessions interactive logins on this virtual host open (package
	// clientapi/session). At most one per virtual host.
	Session *session.Config `yaml:"session"`
	// Ticket redeems single-use tickets from clients.auth_api presented
	// in a query parameter, and sends browsers without credentials to the
	// authentication module.
	Ticket *authapi.TicketConfig `yaml:"ticket"`
	// SessionModule accepts the session tokens a portal registered through
	// clients.auth_api, from a cookie.
	SessionModule *authapi.SessionModuleConfig `yaml:"session_module"`
	// SAML is the node as a SAML 2.0 service provider: browsers without
	// credentials are sent to the IdP, and a login opens a node session
	// (the chain needs a session solution).
	SAML *samlauth.Config `yaml:"saml"`
	// OIDC signs browsers in at an OpenID provider (authorization code
	// flow with PKCE); its ID tokens are encrypted to the node's OIDC key
	// pair (edgefort keys). It opens one of the node's sessions.
	OIDC *oidcauth.Config `yaml:"oidc"`
}

// SolutionKindList names the kinds an authentication entry may set, for
// the error that asks for exactly one.
const SolutionKindList = "jwt, anonymous, header, session, ticket, session_module, saml or oidc"

// Kinds lists the solution kinds set in s (exactly one is valid).
func (s Solution) Kinds() []string {
	var out []string
	for _, k := range []struct {
		set  bool
		kind string
	}{
		{s.JWT != nil, "jwt"}, {s.Anonymous != nil, "anonymous"}, {s.Header != nil, "header"},
		{s.Session != nil, session.Kind}, {s.Ticket != nil, "ticket"}, {s.SessionModule != nil, "session_module"},
		{s.SAML != nil, samlauth.Kind},
		{s.OIDC != nil, oidcauth.Kind},
	} {
		if k.set {
			out = append(out, k.kind)
		}
	}
	return out
}

// Anonymous is the identity of requests that carry no credentials.
type Anonymous struct {
	// Name identifies the solution in logs and metrics. Default "anonymous".
	Name string `yaml:"name"`
	// UserID is the user authorization is asked for. Default "anonymous".
	UserID string `yaml:"user_id"`
	// Directory of UserID. Default "anonymous".
	Directory string `yaml:"directory"`
	// Groups of the anonymous user. Default none.
	Groups []string `yaml:"groups"`
}

// Identity configures what backends learn of the user.
type Identity struct {
	// Headers name the headers that carry the user to the backend.
	Headers IdentityHeaders `yaml:"headers"`
	// Strip are further client header names removed before proxying. The
	// identity headers, every X-Edgefort-* header and, unless the peer is a
	// trusted proxy, Forwarded and X-Forwarded-* are always removed, under
	// any spelling (case, underscores for dashes). The user's credentials
	// for the node never reach a backend either: a Bearer Authorization
	// (when the chain has a JWT solution) and the JWT and session
	// solutions' cookies; other cookies and Authorization schemes pass.
	Strip []string `yaml:"strip"`
	// JWT, when its keystore is set, sends the user as a short-lived JWT
	// signed by the node, verifiable with the JWKS the node serves.
	JWT IdentityJWT `yaml:"jwt"`
}

// IdentityHeaders name the headers that carry the user to backends.
type IdentityHeaders struct {
	// UserID header. Default X-Edgefort-User.
	UserID string `yaml:"user_id"`
	// Directory header. Default X-Edgefort-Directory.
	Directory string `yaml:"directory"`
	// Groups header, comma-separated. Default X-Edgefort-Groups.
	Groups string `yaml:"groups"`
	// Anonymous header is "true" when the user is the anonymous identity
	// (absent otherwise), so that a backend can offer a sign-in link
	// (SignInPath) and never mistake a real user named like it. Default
	// X-Edgefort-Anonymous.
	Anonymous string `yaml:"anonymous"`
}

// IdentityJWT configures the node-signed identity token; backendjwt owns
// it. An empty keystore turns the token off.
type IdentityJWT = backendjwt.Config

// Route sends matching requests to a target endpoint once the user is
// authenticated and authorized.
type Route struct {
	// Name identifies the route in logs and metrics. Required, unique in
	// the virtual host.
	Name string `yaml:"name"`
	// Match is a net/http ServeMux pattern, "[METHOD ][HOST]/PATH", whose
	// {wildcards} the resource may use. Required.
	Match string `yaml:"match"`
	// Target names a clients.target_endpoints entry. Required.
	Target string `yaml:"target"`
	// StripPrefix is removed from the path before proxying.
	StripPrefix string `yaml:"strip_prefix"`
	// Timeout bounds the wait for the backend's response headers; past it
	// the client gets 504. Default 60s.
	Timeout time.Duration `yaml:"timeout"`
	// Action is the action authorization is asked for. Required.
	Action string `yaml:"action"`
	// Resource is what the action applies to.
	Resource Resource `yaml:"resource"`
	// Anonymous admits the anonymous identity (still authorized as it).
	Anonymous bool `yaml:"anonymous"`
	// SSLVars are the values of the variables the target's SSL block uses
	// ({ssl.keystore}, {ssl.truststore}, {ssl.key_alias}), so that routes
	// to one backend may present different client certificates.
	SSLVars SSLVars `yaml:"ssl_vars"`
}

// SSLVars fill a target endpoint's SSL variables for one route.
type SSLVars struct {
	Keystore   string `yaml:"keystore"`
	Truststore string `yaml:"truststore"`
	KeyAlias   string `yaml:"key_alias"`
}

// Resource names what a route acts on; each value is fixed, or "{name}"
// for the route's path wildcard of that name.
type Resource struct {
	Type  string `yaml:"type"`
	ID    string `yaml:"id"`
	Space string `yaml:"space"`
}

// TargetEndpoint is one local backend: the clients.target_endpoints entry.
type TargetEndpoint struct {
	// Name identifies the target. Required, unique.
	Name string `yaml:"name"`
	// URL is the backend's base URL (http or https). Required.
	URL string `yaml:"url"`
	// SSL is the outbound TLS block.
	SSL keystore.SSL `yaml:"ssl"`
}
