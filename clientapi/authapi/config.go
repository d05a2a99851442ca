package authapi

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/keystore"
)

// Defaults, named once: agent/config fills them in and New fills the same
// ones into zero fields.
const (
	DefaultTicketTTL          = 60 * time.Second
	DefaultMaxTickets         = 10_000
	DefaultMaxSessions        = 100_000
	DefaultSessionIdle        = 30 * time.Minute
	DefaultSessionAbsolute    = 12 * time.Hour
	DefaultMaxBodyBytes       = 16 << 10
	DefaultQueryParameter     = "qlikTicket"
	DefaultReturnParameter    = "return_to"
	DefaultTicketName         = "ticket"
	DefaultSessionModuleName  = "session_module"
	DefaultValidationCacheTTL = 10 * time.Second
)

// Config is the authentication API: the configuration's clients.auth_api
// section. An empty Listen turns it off; the ticket and session-module
// solutions need it.
type Config struct {
	// Listen is the host:port of the two-way TLS listener authentication
	// modules and portals call. Empty: no authentication API.
	Listen string `yaml:"listen"`
	// SSL is the listener's TLS block. client_auth_enabled must be true
	// and a truststore named: only clients whose certificate it trusts
	// complete the handshake.
	SSL keystore.SSL `yaml:"ssl"`
	// AllowedCommonNames, when not empty, are the client certificate
	// subject common names allowed to call the API; others get 403.
	AllowedCommonNames []string `yaml:"allowed_common_names"`
	// MaxBodyBytes bounds a request body; larger ones get 413. Default
	// 16384.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Tickets configures the single-use tickets.
	Tickets Tickets `yaml:"tickets"`
	// Sessions configures the session tokens portals register.
	Sessions Sessions `yaml:"sessions"`
}

// Tickets configures the ticket store. Tickets are kept in memory only:
// they live a minute, so an agent restart merely makes the module ask
// again.
type Tickets struct {
	// TTL is how long a ticket may be redeemed. Default 60s; 1s to 10m.
	TTL time.Duration `yaml:"ttl"`
	// Max bounds the tickets outstanding; beyond it (after the expired
	// ones are dropped) the API answers 503. Default 10000.
	Max int `yaml:"max"`
}

// Sessions configures the session-module token store: in memory, and
// written (as hashes) to the state store on registration and deletion,
// their last use about once a minute, so that an agent restart keeps them.
type Sessions struct {
	// IdleTimeout ends a session unused this long. Default 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AbsoluteTimeout ends a session this long after it was registered,
	// used or not. Default 12h.
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// Max bounds the sessions registered; beyond it (after the expired
	// ones are dropped) registration answers 503. Default 100000.
	Max int `yaml:"max"`
}

// TicketConfig is the ticket solution: a clients.virtual_hosts[].
// authentication[].ticket entry.
type TicketConfig struct {
	// Name identifies the solution in logs and metrics. Default "ticket".
	Name string `yaml:"name"`
	// QueryParameter carries the ticket. Default "qlikTicket".
	QueryParameter string `yaml:"query_parameter"`
	// ModuleURL is the authentication module unauthenticated browsers
	// are sent to (http or https). Empty: they get 401 like API clients.
	ModuleURL string `yaml:"module_url"`
	// ReturnParameter is the ModuleURL query parameter that carries the
	// URL to come back to. Default "return_to".
	ReturnParameter string `yaml:"return_parameter"`
	// AllowedRedirects are further origins ("https://portal.example.com")
	// a ticket's target URL may lead to, besides the node's own virtual
	// hosts.
	AllowedRedirects []string `yaml:"allowed_redirects"`
}

// SessionModuleConfig is the session-module solution: a
// clients.virtual_hosts[].authentication[].session_module entry.
type SessionModuleConfig struct {
	// Name identifies the solution in logs and metrics. Default
	// "session_module".
	Name string `yaml:"name"`
	// Cookie carries the session token the portal registered. Required.
	Cookie string `yaml:"cookie"`
	// ValidationURL, when set, is the portal's endpoint the node asks
	// instead of its own store: POST {"session_id": ...} answered 200 with
	// the user (user_id, user_directory, groups, attributes) or 404 (any
	// 4xx) for an invalid token. Anything else refuses the request (the
	// node fails closed). The token travels in the body, never the URL;
	// https, or plain http to a loopback host only.
	ValidationURL string `yaml:"validation_url"`
	// ValidationSSL is the TLS block for ValidationURL (truststore, client
	// certificate), as for a target endpoint.
	ValidationSSL keystore.SSL `yaml:"validation_ssl"`
	// ValidationCache is how long an answer of ValidationURL is reused;
	// deleting the session through the API ends it at once. Default 10s;
	// 1s to 5m.
	ValidationCache time.Duration `yaml:"validation_cache"`
}

// validName reports whether s is 1 to 64 characters, each a letter, a
// digit or one of extra.
func validName(s, extra string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune(extra, c)) {
			return false
		}
	}
	return true
}

// Characters besides letters and digits allowed in a query parameter
// name, and in a cookie name (an RFC 6265 token).
const (
	paramChars  = "_.~-"
	cookieChars = "!#$%&'*+.^_`|~-"
)

// Validate reports every unusable setting of the auth_api section, each a
// *auth.FieldError. Defaults are expected filled.
func (c Config) Validate() error {
	if c.Listen == "" {
		return nil
	}
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, &auth.FieldError{Field: field, Err: fmt.Errorf(format, a...)})
	}
	if !c.SSL.ClientAuthEnabled {
		add("ssl.client_auth_enabled", "must be true: the authentication API is two-way TLS only")
	}
	if c.SSL.Truststore == "" {
		add("ssl.truststore", "required: the client certificates of the authentication modules are verified against it")
	}
	if c.SSL.Enabled != nil && !*c.SSL.Enabled {
		add("ssl.enabled", "must be true: the authentication API is TLS only")
	}
	if c.MaxBodyBytes < 256 || c.MaxBodyBytes > 1<<20 {
		add("max_body_bytes", "%d is out of range (256 to 1048576)", c.MaxBodyBytes)
	}
	if c.Tickets.TTL < time.Second || c.Tickets.TTL > 10*time.Minute {
		add("tickets.ttl", "%s is out of range (1s to 10m)", c.Tickets.TTL)
	}
	if c.Tickets.Max < 1 || c.Tickets.Max > 1_000_000 {
		add("tickets.max", "%d is out of range (1 to 1000000)", c.Tickets.Max)
	}
	if c.Sessions.Max < 1 || c.Sessions.Max > 10_000_000 {
		add("sessions.max", "%d is out of range (1 to 10000000)", c.Sessions.Max)
	}
	if c.Sessions.IdleTimeout < time.Second || c.Sessions.IdleTimeout > c.Sessions.AbsoluteTimeout {
		add("sessions.idle_timeout", "%s is out of range (1s to sessions.absolute_timeout)", c.Sessions.IdleTimeout)
	}
	if c.Sessions.AbsoluteTimeout > 30*24*time.Hour {
		add("sessions.absolute_timeout", "%s is over the limit of 720h", c.Sessions.AbsoluteTimeout)
	}
	for i, cn := range c.AllowedCommonNames {
		if cn == "" {
			add(fmt.Sprintf("allowed_common_names[%d]", i), "empty")
		}
	}
	return errors.Join(errs...)
}

// SetDefaults fills zero fields with the named defaults.
func (c *Config) SetDefaults() {
	setZero(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setZero(&c.Tickets.TTL, DefaultTicketTTL)
	setZero(&c.Tickets.Max, DefaultMaxTickets)
	setZero(&c.Sessions.Max, DefaultMaxSessions)
	setZero(&c.Sessions.IdleTimeout, DefaultSessionIdle)
	setZero(&c.Sessions.AbsoluteTimeout, DefaultSessionAbsolute)
	if c.SSL.Enabled == nil {
		on := true
		c.SSL.Enabled = &on
	}
}

// SetDefaults fills zero fields with the named defaults.
func (c *TicketConfig) SetDefaults() {
	setZero(&c.Name, DefaultTicketName)
	setZero(&c.QueryParameter, DefaultQueryParameter)
	setZero(&c.ReturnParameter, DefaultReturnParameter)
}

// Validate reports every unusable setting, each a *auth.FieldError.
func (c TicketConfig) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, &auth.FieldError{Field: field, Err: fmt.Errorf(format, a...)})
	}
	if !validName(c.QueryParameter, paramChars) {
		add("query_parameter", "%q is not a query parameter name (letters, digits, _.~-; at most 64)", c.QueryParameter)
	}
	if !validName(c.ReturnParameter, paramChars) {
		add("return_parameter", "%q is not a query parameter name (letters, digits, _.~-; at most 64)", c.ReturnParameter)
	}
	if c.ModuleURL != "" {
		if u, err := url.Parse(c.ModuleURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			add("module_url", "%q is not an http(s) URL with a host (and no user or fragment)", c.ModuleURL)
		}
	}
	for i, o := range c.AllowedRedirects {
		if _, err := parseOrigin(o); err != nil {
			add(fmt.Sprintf("allowed_redirects[%d]", i), "%v", err)
		}
	}
	return errors.Join(errs...)
}

// SetDefaults fills zero fields with the named defaults.
func (c *SessionModuleConfig) SetDefaults() {
	setZero(&c.Name, DefaultSessionModuleName)
	setZero(&c.ValidationCache, DefaultValidationCacheTTL)
}

// Validate reports every unusable setting, each a *auth.FieldError.
func (c SessionModuleConfig) Validate() error {
	var errs []error
	if !validName(c.Cookie, cookieChars) {
		errs = append(errs, &auth.FieldError{Field: "cookie", Err: fmt.Errorf("%q is not a cookie name (letters, digits, !#$%%&'*+-.^_`|~; at most 64)", c.Cookie)})
	}
	if c.ValidationURL != "" {
		u, err := url.Parse(c.ValidationURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil:
			errs = append(errs, &auth.FieldError{Field: "validation_url", Err: fmt.Errorf("%q is not an http(s) URL with a host (and no user info)", c.ValidationURL)})
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			// Every user's session token goes there: in clear text only
			// to a portal on this machine.
			errs = append(errs, &auth.FieldError{Field: "validation_url", Err: fmt.Errorf("%q: plain http only to a loopback host (localhost, 127.0.0.0/8, ::1); use https", c.ValidationURL)})
		}
	}
	if c.ValidationCache < time.Second || c.ValidationCache > 5*time.Minute {
		errs = append(errs, &auth.FieldError{Field: "validation_cache", Err: fmt.Errorf("%s is out of range (1s to 5m)", c.ValidationCache)})
	}
	return errors.Join(errs...)
}

func setZero[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// loopbackHost reports whether host (a URL's, without port) is this
// machine: "localhost" or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
