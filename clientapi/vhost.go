package clientapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/clientapi/headerauth"
	"github.com/edgefort/edgefort/clientapi/jwtauth"
	"github.com/edgefort/edgefort/clientapi/oidcauth"
	"github.com/edgefort/edgefort/clientapi/samlauth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/prom"
)

// virtualHost is a built VirtualHost: everything a request needs, swapped
// as a whole by a reload.
type virtualHost struct {
	cfg     VirtualHost
	tls     *tls.Config // nil when TLS is off; offers h2 when HTTP2 is on
	mux     *http.ServeMux
	chain   chain
	authz   Authorizer
	fails   *failLimiter
	proxies proxies
	strip   map[string]bool // canonical header names
	// cookies are the cookies that carry the node's credentials (the
	// session's, the JWT solutions'): never forwarded to a backend.
	cookies []string
	minter  IdentityMinter    // nil: no identity token
	session *session.Solution // nil: the chain has no session solution
	routes  []*route
	m       *metrics
	log     *slog.Logger
}

// builder builds virtual hosts from one Config.
type builder struct {
	deps     Deps
	m        *metrics
	log      *slog.Logger
	targets  map[string]*target
	sessions *session.Store
	// ownHosts are every virtual host's aliases and listen addresses:
	// where the ticket solution may redirect.
	ownHosts []string
}

// fieldErr names a setting of virtual host i.
func fieldErr(i int, field string, err error) error {
	return &FieldError{Field: fmt.Sprintf("clients.virtual_hosts[%d].%s", i, field), Err: err}
}

// host builds virtual host i; every problem is a FieldError.
func (b *builder) host(i int, cfg VirtualHost) (*virtualHost, []error) {
	cfg = withHostDefaults(cfg)
	h := &virtualHost{cfg: cfg, authz: b.deps.Authorizer, m: b.m, strip: stripSet(cfg.Identity),
		log: b.log.With(logKeyVirtualHost, cfg.Name), fails: newFailLimiter(cfg.FailedAuthLimit, b.deps.Now)}
	var errs []error
	if err := h.checkListen(); err != nil {
		errs = append(errs, fieldErr(i, "listen", err))
	}
	var err error
	if h.proxies, err = parseProxies(cfg.TrustedProxies); err != nil {
		errs = append(errs, fieldErr(i, "trusted_proxies", err))
	}
	if err := h.buildTLS(b); err != nil {
		errs = append(errs, fieldErr(i, "ssl", err))
	}
	errs = append(errs, b.buildChain(i, h)...)
	if err := h.checkSessionStarters(i); err != nil {
		errs = append(errs, err)
	}
	if cfg.Identity.JWT.Keystore != "" {
		if b.deps.IdentityMinter == nil {
			errs = append(errs, fieldErr(i, "identity.jwt", errors.New("the node-signed identity token is not available in this build")))
		} else if h.minter, err = b.deps.IdentityMinter(cfg.Identity.JWT); err != nil {
			errs = append(errs, fieldErr(i, "identity.jwt", err))
		}
	}
	errs = append(errs, b.buildMux(i, h)...)
	return h, errs
}

func withHostDefaults(c VirtualHost) VirtualHost {
	t := &c.Timeouts
	t.ReadHeader = orDefault(t.ReadHeader, DefaultReadHeaderTimeout)
	t.Idle = orDefault(t.Idle, DefaultIdleTimeout)
	t.Drain = orDefault(t.Drain, DefaultDrainTimeout)
	c.Limits.MaxHeaderBytes = orDefault(c.Limits.MaxHeaderBytes, DefaultMaxHeaderBytes)
	c.Limits.MaxRequestBodyBytes = orDefault(c.Limits.MaxRequestBodyBytes, DefaultMaxRequestBodyBytes)
	hs := &c.Identity.Headers
	hs.UserID = orDefault(hs.UserID, DefaultUserIDHeader)
	hs.Directory = orDefault(hs.Directory, DefaultDirectoryHeader)
	hs.Groups = orDefault(hs.Groups, DefaultGroupsHeader)
	hs.Anonymous = orDefault(hs.Anonymous, DefaultAnonymousHeader)
	j := &c.Identity.JWT
	j.Header = orDefault(j.Header, DefaultIdentityJWTHeader)
	j.TTL = orDefault(j.TTL, DefaultIdentityJWTTTL)
	for i := range c.Routes {
		c.Routes[i].Timeout = orDefault(c.Routes[i].Timeout, DefaultRouteTimeout)
	}
	return c
}

// checkListen refuses an address that binds every interface unless
// allow_wildcard says so, and warns when it does.
func (h *virtualHost) checkListen() error {
	if len(h.cfg.Listen) == 0 {
		return errors.New("required (host:port on the private network)")
	}
	for _, addr := range h.cfg.Listen {
		if !IsWildcard(addr) {
			continue
		}
		if !h.cfg.AllowWildcard {
			return fmt.Errorf("%q binds every interface; name the private network's address, or set allow_wildcard: true", addr)
		}
		h.log.Warn("virtual host binds every interface (allow_wildcard)", "addr", addr)
	}
	return nil
}

// IsWildcard reports whether addr (host:port) binds every interface.
func IsWildcard(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

func (h *virtualHost) buildTLS(b *builder) error {
	vh := h.cfg
	if vh.SSL.Enabled == nil || !*vh.SSL.Enabled {
		h.log.Warn("virtual host serves plain HTTP", "listen", []string(vh.Listen))
		return nil
	}
	c, err := b.deps.Keystores.ServerTLS(vh.SSL)
	if err != nil {
		return err
	}
	c = c.Clone()
	c.NextProtos = []string{"http/1.1"}
	if vh.HTTP2 == nil || *vh.HTTP2 {
		c.NextProtos = []string{"h2", "http/1.1"}
	}
	h.tls = c
	if vh.SSL.Keystore == "" {
		h.log.Warn("virtual host serves the BUILT-IN SELF-SIGNED certificate; clients will not trust it. Set ssl.keystore to a keystore or ref://reference",
			"listen", []string(vh.Listen))
	}
	return nil
}

// buildChain builds the virtual host's authentication solutions.
func (b *builder) buildChain(i int, h *virtualHost) []error {
	var errs []error
	for j, s := range h.cfg.Authentication {
		path := fmt.Sprintf("authentication[%d]", j)
		if len(s.Kinds()) != 1 {
			errs = append(errs, fieldErr(i, path, errors.New("set exactly one solution (one of: "+SolutionKindList+")")))
			continue
		}
		var sol auth.Solution
		var err error
		switch {
		case s.JWT != nil:
			path += ".jwt"
			sol, err = jwtauth.New(*s.JWT, jwtauth.Deps{Keystores: b.deps.Keystores, Logger: b.log.With("solution", "jwt"), Now: b.deps.Now})
			h.chain.bearer = h.chain.bearer || err == nil
			if s.JWT.Cookie != "" {
				h.cookies = append(h.cookies, s.JWT.Cookie)
			}
		case s.Anonymous != nil:
			sol = newAnonymous(*s.Anonymous)
		case s.Header != nil:
			errs = append(errs, b.headerSolution(i, path, h, *s.Header)...)
			continue
		case s.Session != nil:
			if h.session != nil {
				errs = append(errs, fieldErr(i, path+".session", errors.New("a virtual host has one session solution (one cookie)")))
				continue
			}
			path += ".session"
			var ss *session.Solution
			ss, err = session.NewSolution(*s.Session, h.cfg.Name, h.tls != nil, b.sessions, b.log.With("solution", session.Kind))
			if err == nil {
				h.session, sol = ss, ss
				h.cookies = append(h.cookies, ss.Config().Cookie)
			}
		case s.Ticket != nil:
			path += ".ticket"
			sol, err = b.ticket(*s.Ticket, h.cfg.Name)
		case s.SessionModule != nil:
			path += ".session_module"
			sol, err = b.sessionModule(*s.SessionModule, h.cfg.Name)
		case s.SAML != nil:
			path += ".saml"
			deps := samlauth.Deps{Logger: b.log.With("solution", samlauth.Kind), Now: b.deps.Now, Store: b.deps.Store, Keystores: b.deps.Keystores}
			if b.sessions != nil {
				deps.Sessions = idpSessionEnder{store: b.sessions, vhost: h.cfg.Name}
			}
			sol, err = samlauth.New(*s.SAML, deps)
		case s.OIDC != nil:
			path += ".oidc"
			sol, err = oidcauth.New(*s.OIDC, oidcauth.Deps{Keystores: b.deps.Keystores, KeyPairs: b.deps.KeyPairs,
				Logger: h.log.With("solution", oidcauth.Kind), Now: b.deps.Now})
		}
		if err != nil {
			errs = append(errs, fieldErr(i, path, err))
			continue
		}
		h.chain.solutions = append(h.chain.solutions, sol)
	}
	return errs
}

// headerSolution adds a header solution to h's chain and its headers to
// the ones stripped before proxying, so that a backend never sees a
// client's value there, whichever solution authenticated the request.
func (b *builder) headerSolution(i int, path string, h *virtualHost, c headerauth.Config) []error {
	sol, err := headerauth.New(c, headerauth.Deps{Logger: h.log, Now: b.deps.Now})
	if err != nil {
		return []error{fieldErr(i, path+".header", err)}
	}
	for _, name := range sol.Headers() {
		h.strip[stripKey(name)] = true
	}
	h.chain.solutions = append(h.chain.solutions, sol)
	return nil
}

var errNoAuthAPI = errors.New("needs clients.auth_api (its listen address), where tickets and sessions are issued")

// ticket builds a ticket solution; its redirects may lead to any of the
// node's virtual hosts.
func (b *builder) ticket(c authapi.TicketConfig, vhost string) (auth.Solution, error) {
	if b.deps.AuthAPI == nil {
		return nil, errNoAuthAPI
	}
	return b.deps.AuthAPI.TicketSolution(c, vhost, b.ownHosts)
}

func (b *builder) sessionModule(c authapi.SessionModuleConfig, vhost string) (auth.Solution, error) {
	if b.deps.AuthAPI == nil {
		return nil, errNoAuthAPI
	}
	return b.deps.AuthAPI.SessionModuleSolution(c, vhost)
}

// buildMux builds the routes and the virtual host's ServeMux.
func (b *builder) buildMux(i int, h *virtualHost) []error {
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	h.mux.HandleFunc("GET "+SignInPath, h.serveSignIn)
	if len(h.loginLinks()) > 0 {
		h.mux.HandleFunc("GET "+PathLoginChooser, h.serveChooser)
	}
	if h.minter != nil {
		h.mux.Handle("GET /.well-known/jwks.json", h.minter.JWKS())
	}
	if h.session != nil {
		h.mux.HandleFunc("GET "+PathSession, h.serveSession)
		h.mux.HandleFunc("POST "+PathLogout, h.serveLogout)
	}
	errs := h.registerEndpoints(i)
	if len(h.cfg.Routes) > 0 && h.authz == nil {
		errs = append(errs, fieldErr(i, "routes", errors.New("routes need authorization, which needs the control plane (cloud.enabled)")))
	}
	names := map[string]bool{}
	for j, rc := range h.cfg.Routes {
		path := fmt.Sprintf("routes[%d]", j)
		if names[rc.Name] {
			errs = append(errs, fieldErr(i, path+".name", fmt.Errorf("%q is used twice", rc.Name)))
		}
		names[rc.Name] = true
		t, ok := b.targets[rc.Target]
		if !ok {
			errs = append(errs, fieldErr(i, path+".target", fmt.Errorf("no target endpoint named %q in clients.target_endpoints", rc.Target)))
			continue
		}
		if err := CheckMatch(rc.Match, rc.Resource); err != nil {
			errs = append(errs, fieldErr(i, path+".match", err))
			continue
		}
		tlsCfg, err := t.tlsFor(rc.SSLVars)
		if err != nil {
			errs = append(errs, fieldErr(i, path+".ssl_vars", err))
			continue
		}
		rt := &route{cfg: rc, target: t.url, core: newCore(rc, t, tlsCfg), transport: newTransport(tlsCfg, rc.Timeout),
			requests: b.m.requests.MustCurryWith(prom.Labels{"virtual_host": h.cfg.Name, "route": rc.Name}),
			latency:  b.m.latency.WithLabelValues(h.cfg.Name, rc.Name)}
		rt.proxy = h.newProxy(rc, t, rt.transport)
		if err := register(h.mux, rc.Match, h.routeHandler(rt)); err != nil {
			errs = append(errs, fieldErr(i, path+".match", err))
			continue
		}
		h.routes = append(h.routes, rt)
	}
	return errs
}

// ServeHTTP gives every request an id, checks the host and bounds the body
// before the routes see it.
func (h *virtualHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set(HeaderRequestID, id)
	r = r.WithContext(context.WithValue(r.Context(), ctxState, &reqState{id: id}))
	if len(h.cfg.HostAliases) > 0 && !h.answers(r.Host) {
		writeProblem(w, r, http.StatusMisdirectedRequest, "unknown_host")
		return
	}
	limit := h.cfg.Limits.MaxRequestBodyBytes
	if r.ContentLength > limit {
		writeProblem(w, r, http.StatusRequestEntityTooLarge, "request_body_too_large")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	h.mux.ServeHTTP(w, r)
}

// answers reports whether host (with or without a port) is one of the
// virtual host's aliases.
func (h *virtualHost) answers(host string) bool {
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	for _, a := range h.cfg.HostAliases {
		if strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

// closeIdle releases the routes' idle backend connections once a reload
// has replaced them.
func (h *virtualHost) closeIdle() {
	for _, rt := range h.routes {
		rt.core.Pool.CloseIdle()
		rt.transport.CloseIdleConnections()
	}
}

// sameListen reports whether two virtual hosts bind the same addresses
// the same way, so that a reload can keep the listeners.
func sameListen(a, b *virtualHost) bool {
	return strings.Join(a.cfg.Listen, ",") == strings.Join(b.cfg.Listen, ",") && (a.tls == nil) == (b.tls == nil) &&
		a.cfg.Timeouts == b.cfg.Timeouts && a.cfg.Limits.MaxHeaderBytes == b.cfg.Limits.MaxHeaderBytes
}
