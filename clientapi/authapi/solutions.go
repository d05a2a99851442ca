package authapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/session"
)

// Refusal reasons of the solutions besides the store's.
const (
	reasonTicketMalformed    = "ticket_malformed"
	reasonWrongVirtualHost   = "wrong_virtual_host"
	reasonRedirectNotAllowed = "redirect_not_allowed"
	reasonSessionMalformed   = "session_malformed"
)

// TicketSolution redeems the tickets of the API presented in a query
// parameter: the user gets one of the node's sessions and a redirect to
// the ticket's target, or to the URL they came with, without the ticket.
// It is the virtual host's Challenger too: browsers without credentials
// are sent to the authentication module with the URL to come back to.
type TicketSolution struct {
	cfg         TicketConfig
	virtualHost string
	store       *ticketStore
	redirects   *redirects
}

// TicketSolution builds the ticket solution of virtual host vhost.
// ownHosts are the host names of every virtual host of the node (aliases
// and listen addresses): redirects may lead there, and to cfg's
// allowed_redirects, nowhere else.
func (a *API) TicketSolution(cfg TicketConfig, vhost string, ownHosts []string) (*TicketSolution, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rd, err := newRedirects(ownHosts, cfg.AllowedRedirects)
	if err != nil {
		return nil, &auth.FieldError{Field: "allowed_redirects", Err: err}
	}
	a.policies.Store(vhost, rd)
	return &TicketSolution{cfg: cfg, virtualHost: vhost, store: a.tickets, redirects: rd}, nil
}

func (s *TicketSolution) Kind() string { return "ticket" }

// StartsSessions: a redeemed ticket opens one of the node's sessions, so
// the virtual host's chain must hold a session solution to read its
// cookie (the client API refuses the configuration otherwise).
func (s *TicketSolution) StartsSessions() bool { return true }
func (s *TicketSolution) Name() string         { return s.cfg.Name }

func (s *TicketSolution) Authenticate(r *http.Request) auth.Result {
	p := s.cfg.QueryParameter
	if !strings.Contains(r.URL.RawQuery, p+"=") {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || len(q[p]) != 1 {
		if len(q[p]) == 0 && err == nil {
			return auth.Result{Outcome: auth.NoCredentials}
		}
		return refused(reasonTicketMalformed, errors.New("the query does not carry exactly one ticket"))
	}
	t, err := s.store.redeem(q[p][0])
	if err != nil {
		return refused(err.Error(), nil)
	}
	if t.virtualHost != "" && t.virtualHost != s.virtualHost {
		return refused(reasonWrongVirtualHost, fmt.Errorf("the ticket is for virtual host %q", t.virtualHost))
	}
	target := t.target
	if target == "" {
		q.Del(p)
		u := url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: q.Encode()}
		target = u.RequestURI()
	}
	loc, err := s.redirects.check(target)
	if err != nil {
		return refused(reasonRedirectNotAllowed, fmt.Errorf("target url: %w", err))
	}
	id := t.id
	id.Solution = s.cfg.Name
	return auth.Result{Outcome: auth.Authenticated, Identity: id, StartSession: true, Redirect: loc}
}

// Challenge sends a browser to the authentication module with the URL it
// asked for, provided the Host it used is one of the node's own.
func (s *TicketSolution) Challenge(r *http.Request) (string, bool) {
	if s.cfg.ModuleURL == "" || !s.redirects.ownHost(r.Host) {
		return "", false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	back := scheme + "://" + r.Host + r.URL.RequestURI()
	if _, err := s.redirects.check(back); err != nil {
		return "", false
	}
	m, err := url.Parse(s.cfg.ModuleURL)
	if err != nil {
		return "", false
	}
	q := m.Query()
	q.Set(s.cfg.ReturnParameter, back)
	m.RawQuery = q.Encode()
	return m.String(), true
}

// SessionModuleSolution accepts the session tokens portals register
// through the API, from a cookie.
type SessionModuleSolution struct {
	cfg         SessionModuleConfig
	virtualHost string
	store       *sessionStore
	validator   *validator // nil: the API's own store decides
}

// SessionModuleSolution builds the session-module solution of virtual
// host vhost.
func (a *API) SessionModuleSolution(cfg SessionModuleConfig, vhost string) (*SessionModuleSolution, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &SessionModuleSolution{cfg: cfg, virtualHost: vhost, store: a.sessions}
	if cfg.ValidationURL != "" {
		v, err := newValidator(cfg, a.deps.Keystores, a.validations)
		if err != nil {
			return nil, err
		}
		s.validator = v
	}
	return s, nil
}

func (s *SessionModuleSolution) Kind() string { return "session_module" }
func (s *SessionModuleSolution) Name() string { return s.cfg.Name }

func (s *SessionModuleSolution) Authenticate(r *http.Request) auth.Result {
	c, err := r.Cookie(s.cfg.Cookie)
	if err != nil {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	if !validSessionID(c.Value) {
		return refused(reasonSessionMalformed, fmt.Errorf("cookie %s does not hold a session token", s.cfg.Cookie))
	}
	// The portal's cookie comes with every request the browser sends,
	// whichever page asked, and its SameSite is the portal's choice: a
	// state-changing request or a WebSocket from another origin is
	// refused (there is no CSRF token to ask for here).
	if (!session.SafeMethod(r.Method) || session.IsUpgrade(r)) && session.CrossOrigin(r) {
		return refused(session.ReasonCSRF, fmt.Errorf("a %s request authenticated by cookie %s comes from a page of another origin", r.Method, s.cfg.Cookie))
	}
	if s.validator != nil {
		id, err := s.validator.check(r.Context(), c.Value)
		switch {
		case errors.Is(err, errSessionUnknown):
			return refused(err.Error(), nil)
		case err != nil:
			return refused(reasonUnavailable, err)
		}
		id.Solution = s.cfg.Name
		return auth.Result{Outcome: auth.Authenticated, Identity: id}
	}
	sess, err := s.store.lookup(c.Value, true)
	if err != nil {
		return refused(err.Error(), nil)
	}
	if sess.virtualHost != "" && sess.virtualHost != s.virtualHost {
		return refused(reasonWrongVirtualHost, fmt.Errorf("the session is for virtual host %q", sess.virtualHost))
	}
	id := sess.id
	id.Solution = s.cfg.Name
	id.Expires = s.store.expires(sess)
	return auth.Result{Outcome: auth.Authenticated, Identity: id}
}

func refused(reason string, err error) auth.Result {
	return auth.Result{Outcome: auth.Refused, Reason: reason, Err: err}
}

var (
	_ auth.Solution   = (*TicketSolution)(nil)
	_ auth.Challenger = (*TicketSolution)(nil)
	_ auth.Solution   = (*SessionModuleSolution)(nil)
)
