package session

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Kind is the solution type as configured.
const Kind = "session"

// HeaderCSRF carries the session's CSRF token: the node gives it in this
// response header at login (and in GET /.edgefort/session), and
// cookie-authenticated requests with an unsafe method (POST, PUT, PATCH,
// DELETE, ...) must send it back in the same header. A cross-site page
// cannot read it, so it cannot forge such a request; SameSite on the
// cookie is the second line.
const HeaderCSRF = "X-Edgefort-CSRF"

// ReasonCSRF is the refusal of a state-changing request without the
// session's CSRF token (the client API answers 403).
const ReasonCSRF = "csrf"

// Solution authenticates requests by the session cookie of one virtual
// host.
type Solution struct {
	cfg    Config
	vhost  string
	secure bool
	store  *Store
	log    *slog.Logger
}

// NewSolution builds vhost's session solution on st. secure marks the
// cookie Secure (the virtual host serves TLS). cfg gets its defaults here.
func NewSolution(cfg Config, vhost string, secure bool, st *Store, log *slog.Logger) (*Solution, error) {
	cfg = cfg.WithDefaults(vhost)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("sessions need the state store, which this process has not opened")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Solution{cfg: cfg, vhost: vhost, secure: secure, store: st, log: log}, nil
}

func (s *Solution) Kind() string { return Kind }
func (s *Solution) Name() string { return s.cfg.Name }

// Config is the configuration in force, defaults filled in.
func (s *Solution) Config() Config { return s.cfg }

// Current returns the session r's cookie names, marking it used. A cookie
// that names no valid session on this virtual host is an error.
func (s *Solution) Current(r *http.Request) (Session, error) {
	c, err := r.Cookie(s.cfg.Cookie)
	if err != nil {
		return Session{}, ErrNotFound
	}
	return s.store.Lookup(s.vhost, c.Value)
}

// Authenticate finds the session of the request's cookie. A cookie that
// names no valid session (expired, revoked, another virtual host's) is
// logged and passed over as no credentials, so that the next solution (a
// ticket, a login redirect) can sign the user in afresh.
func (s *Solution) Authenticate(r *http.Request) auth.Result {
	if _, err := r.Cookie(s.cfg.Cookie); err != nil {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	sess, err := s.Current(r)
	if err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "session cookie not accepted",
			slog.String("virtual_host", s.vhost), slog.String("reason", err.Error()))
		return auth.Result{Outcome: auth.NoCredentials}
	}
	if !SafeMethod(r.Method) && !CheckCSRF(r, sess.CSRF) {
		return auth.Result{Outcome: auth.Refused, Identity: sess.Identity, Reason: ReasonCSRF,
			Err: errors.New("a state-changing request authenticated by the session cookie lacks the session's CSRF token in " + HeaderCSRF)}
	}
	if IsUpgrade(r) && CrossOrigin(r) {
		return auth.Result{Outcome: auth.Refused, Identity: sess.Identity, Reason: ReasonCSRF, Err: errCrossOriginUpgrade}
	}
	id := sess.Identity
	id.Solution = s.cfg.Name
	return auth.Result{Outcome: auth.Authenticated, Identity: id}
}

// SafeMethod reports whether method changes nothing (RFC 9110 9.2.1), so
// needs no CSRF token.
func SafeMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

var errCrossOriginUpgrade = errors.New("a WebSocket (upgrade) request authenticated by a cookie comes from a page of another origin")

// IsUpgrade reports whether r asks to switch protocols (a WebSocket
// handshake). Such a GET changes state as much as a POST, but carries
// no CSRF header: a browser's WebSocket API cannot set one, and sends the
// cookies of the target, so another page could open the user's WebSocket
// (cross-site WebSocket hijacking) unless the origin is checked.
func IsUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != ""
}

// CrossOrigin reports whether a browser sent r from a page of another
// origin than the one r is for: Sec-Fetch-Site other than same-origin or
// none (a sibling subdomain is same-site, still another origin), else an
// Origin header whose host is not r.Host. A request with neither (not a
// browser, or an old one) is not cross-origin: such a client is not
// driven by another site.
func CrossOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
	default:
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return true // "null" (a sandboxed page, a redirect) or garbage
	}
	return !strings.EqualFold(u.Host, r.Host)
}

// CheckCSRF reports whether r carries token in HeaderCSRF.
func CheckCSRF(r *http.Request, token string) bool {
	return sameToken(r.Header.Get(HeaderCSRF), token)
}

// FormCSRF is the form field that may carry the CSRF token instead of
// HeaderCSRF where a plain HTML form posts (it cannot set headers): the
// sign-out of a single logout.
const FormCSRF = "csrf_token"

// CheckCSRFForm is CheckCSRF, taking the token from the form field
// FormCSRF of a parsed posted form when the header has none.
func CheckCSRFForm(r *http.Request, token string) bool {
	if got := r.Header.Get(HeaderCSRF); got != "" {
		return sameToken(got, token)
	}
	return sameToken(r.PostForm.Get(FormCSRF), token)
}

func sameToken(got, token string) bool {
	return got != "" && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// Start opens a new session for id and sets its cookie and CSRF header on
// w. Whatever session cookie the request carried is ignored: the token is
// always new (no fixation).
func (s *Solution) Start(w http.ResponseWriter, id auth.Identity) (Session, error) {
	token, sess, err := s.store.Create(s.vhost, id, Limits{
		IdleTimeout: s.cfg.IdleTimeout, AbsoluteTimeout: s.cfg.AbsoluteTimeout, MaxPerUser: s.cfg.MaxPerUser,
	})
	if err != nil {
		return Session{}, err
	}
	http.SetCookie(w, s.cookie(token, 0))
	w.Header().Set(HeaderCSRF, sess.CSRF)
	w.Header().Set("Cache-Control", "no-store")
	return sess, nil
}

// SignOut ends the session of r's cookie, if any, and clears the cookie.
func (s *Solution) SignOut(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, s.cookie("", -1))
	c, err := r.Cookie(s.cfg.Cookie)
	if err != nil {
		return ErrNotFound
	}
	return s.store.SignOut(s.vhost, c.Value)
}

// cookie is the session cookie: a browser-session cookie (no Max-Age)
// unless maxAge clears it.
func (s *Solution) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: s.cfg.Cookie, Value: value, Path: "/", MaxAge: maxAge,
		Secure: s.secure, HttpOnly: true, SameSite: s.cfg.sameSite()}
}

var _ auth.Solution = (*Solution)(nil)
