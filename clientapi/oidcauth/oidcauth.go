// Package oidcauth owns the OpenID Connect relying party solution: a
// browser without credentials is sent to the provider (authorization code
// flow with PKCE, state and nonce), and the callback exchanges the code for
// an ID token that is encrypted to the node's OIDC key pair (keystore
// KeyPairs) and signed by the provider. It owns the verification login too,
// which promotes a pending key pair once the provider encrypts to it, and
// serves the node's encryption JWK Set.
package oidcauth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth"
	"github.com/edgefort/edgefort/keystore"
)

// Refusal reasons.
const (
	ReasonProviderError    = "oidc_provider_error" // the provider answered the callback with an error
	ReasonBadState         = "oidc_bad_state"      // unknown, expired, replayed state or another browser's
	ReasonUnavailable      = "oidc_unavailable"    // discovery, token endpoint or JWK Set failed
	ReasonNotEncrypted     = "oidc_not_encrypted"  // a plain signed ID token where encryption is required
	ReasonDecrypt          = "oidc_decrypt_failed" // the ID token does not decrypt with the node's key pair
	ReasonBadNonce         = "oidc_bad_nonce"      // nonce missing or not the login's
	ReasonBadAZP           = "oidc_bad_azp"        // several audiences and azp is not the client id
	ReasonVerificationFail = "oidc_verification_failed"
)

// Deps are what the owner hands the solution.
type Deps struct {
	// Keystores resolve the ssl block. Required.
	Keystores *keystore.Manager
	// KeyPairs decrypt the ID tokens. Required when encryption is
	// required; a nil KeyPairs accepts signed tokens only.
	KeyPairs *keystore.KeyPairs
	// Logger receives the solution's log lines. Required.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Solution is the OIDC relying party of one virtual host. Safe for
// concurrent use.
type Solution struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	now     func() time.Time
	client  *http.Client
	logins  *loginStore
	encAlgs map[string]bool

	// dmu guards the discovery document and the ID token verifier built
	// from it; it is held during a discovery fetch, so nothing else
	// waits on it.
	dmu      sync.Mutex
	provider provider
	verifier *jwtauth.Solution // built once discovery succeeded

	mu sync.Mutex
	// verifying is set once an admin started a verification login: the
	// pending key pair is listed in the JWK Set from then on.
	verifying bool
}

// New checks cfg and builds the solution. It touches no network: discovery
// happens at the first login.
func New(cfg Config, deps Deps) (*Solution, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil || deps.Keystores == nil {
		return nil, errors.New("oidc: new: a logger and the keystores are required")
	}
	if *cfg.RequireEncryption && deps.KeyPairs == nil {
		return nil, &auth.FieldError{Field: "require_encryption", Err: errors.New("the node has no OIDC key pairs (edgefort keys generate) to decrypt with")}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	u, _ := url.Parse(cfg.Issuer)
	tlsCfg, err := deps.Keystores.ClientTLS(cfg.SSL, u.Hostname(), keystore.Vars{})
	if err != nil {
		return nil, &auth.FieldError{Field: "ssl", Err: err}
	}
	transport := &http.Transport{TLSClientConfig: tlsCfg, TLSHandshakeTimeout: httpTimeout,
		ResponseHeaderTimeout: httpTimeout, DisableKeepAlives: true}
	s := &Solution{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now,
		client:  &http.Client{Transport: transport, Timeout: httpTimeout, CheckRedirect: noRedirects},
		logins:  newLoginStore(cfg.MaxPendingLogins, cfg.LoginTimeout, deps.Now),
		encAlgs: map[string]bool{}}
	for _, a := range cfg.EncryptionAlgorithms {
		s.encAlgs[a] = true
	}
	return s, nil
}

func noRedirects(*http.Request, []*http.Request) error {
	return errors.New("redirects are not followed")
}

func (s *Solution) Kind() string { return Kind }
func (s *Solution) Name() string { return s.cfg.Name }

// StartsSessions: a login opens one of the node's sessions.
func (s *Solution) StartsSessions() bool { return true }

// LoginPath starts a login (GET ?return_to=/page).
func (s *Solution) LoginPath() string { return s.cfg.LoginPath }

// DisplayName names the provider on the virtual host's login chooser.
func (s *Solution) DisplayName() string { return s.cfg.DisplayName }

// Endpoints are the node paths of the solution: the login and
// verification starts and the JWK Set, which it serves itself, and the
// callback, where Authenticate ends the login.
func (s *Solution) Endpoints() []auth.Endpoint {
	return []auth.Endpoint{
		{Pattern: "GET " + s.cfg.LoginPath, Handler: http.HandlerFunc(s.serveLogin)},
		{Pattern: "GET " + s.cfg.VerifyPath, Handler: http.HandlerFunc(s.serveVerify)},
		{Pattern: "GET " + s.cfg.JWKSPath, Handler: http.HandlerFunc(s.serveJWKS)},
		{Pattern: "GET " + s.cfg.CallbackPath, Login: func(_ http.ResponseWriter, r *http.Request) auth.Result { return s.Authenticate(r) }},
	}
}

// Challenge sends a browser to the login path with the page to come back
// to (a path on this virtual host).
func (s *Solution) Challenge(r *http.Request) (string, bool) {
	q := url.Values{returnParam: {r.URL.RequestURI()}}
	return s.cfg.LoginPath + "?" + q.Encode(), true
}

const returnParam = "return_to"

// safeReturn keeps a return target a path on this virtual host: anything
// else (a scheme, a host, //host, a backslash) becomes "/".
func safeReturn(v string) string {
	if v == "" || !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\\r\n") {
		return "/"
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return v
}

func (s *Solution) serveLogin(w http.ResponseWriter, r *http.Request) {
	s.startLogin(w, r, false, safeReturn(r.URL.Query().Get(returnParam)))
}

// serveVerify starts a verification login of the pending key pair: the
// admin opens it after giving the provider the pending public key.
func (s *Solution) serveVerify(w http.ResponseWriter, r *http.Request) {
	if s.deps.KeyPairs == nil || !hasPending(s.deps.KeyPairs) {
		http.Error(w, "no pending OIDC key pair to verify: run edgefort keys rotate first", http.StatusConflict)
		return
	}
	s.mu.Lock()
	s.verifying = true
	s.mu.Unlock()
	s.startLogin(w, r, true, "")
}

func hasPending(k *keystore.KeyPairs) bool {
	for _, p := range k.List() {
		if p.State == keystore.KeyPairPending {
			return true
		}
	}
	return false
}

// serveJWKS serves the node's encryption keys: the active pair, and the
// pending one once a verification login was started.
func (s *Solution) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if s.deps.KeyPairs == nil {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	which := keystore.KeyPairActive
	if s.verifying && hasPending(s.deps.KeyPairs) {
		which = ""
	}
	s.mu.Unlock()
	body, err := s.deps.KeyPairs.JWKS(which)
	if err != nil {
		http.Error(w, "no OIDC key pair", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(body)
}

func (s *Solution) startLogin(w http.ResponseWriter, r *http.Request, verify bool, back string) {
	p, err := s.discover(r)
	if err != nil {
		s.log.Error("oidc discovery failed", "issuer", s.cfg.Issuer, "error", err)
		http.Error(w, "the identity provider is unavailable", http.StatusBadGateway)
		return
	}
	l, browser, err := s.logins.start(back, verify)
	if err != nil {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "too many logins in progress", http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.cfg.StateCookie, Value: browser, Path: s.cfg.CallbackPath,
		MaxAge: int(s.cfg.LoginTimeout / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	challenge := sha256.Sum256([]byte(l.verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {s.cfg.ClientID},
		"redirect_uri":          {s.redirectURI(r)},
		"scope":                 {strings.Join(append([]string{"openid"}, s.cfg.Scopes...), " ")},
		"state":                 {l.state},
		"nonce":                 {l.nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	if verify {
		q.Set("prompt", "login")
	}
	sep := "?"
	if strings.Contains(p.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.AuthorizationEndpoint+sep+q.Encode(), http.StatusSeeOther)
}

// redirectURI is the callback URL on the host the browser used; the
// provider checks it against the client's registered URIs, and the token
// request repeats it.
func (s *Solution) redirectURI(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + s.cfg.CallbackPath
}

// Authenticate answers the callback; every other request carries nothing
// this solution reads.
func (s *Solution) Authenticate(r *http.Request) auth.Result {
	if r.URL.Path != s.cfg.CallbackPath {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	c, err := r.Cookie(s.cfg.StateCookie)
	if err != nil {
		return refused(ReasonBadState, errors.New("no login cookie: the login was started in another browser"))
	}
	l, err := s.logins.take(state, c.Value)
	if err != nil {
		return refused(ReasonBadState, err)
	}
	if e := q.Get("error"); e != "" {
		return refused(ReasonProviderError, fmt.Errorf("the provider answered error %.80q", e))
	}
	code := q.Get("code")
	if code == "" {
		return refused(ReasonProviderError, errors.New("the callback carries no code"))
	}
	token, err := s.exchange(r, code, l.verifier)
	if err != nil {
		return refused(ReasonUnavailable, err)
	}
	id, reason, err := s.idToken(token, l)
	if err != nil {
		if l.verify {
			s.log.Warn("oidc verification login failed: the active key pair stays in use", "reason", reason, "error", err)
			return refused(ReasonVerificationFail, fmt.Errorf("%s: %w", reason, err))
		}
		return refused(reason, err)
	}
	if l.verify {
		info, err := s.deps.KeyPairs.Verify([]byte(token), true)
		if err != nil {
			s.log.Warn("oidc verification login failed: the active key pair stays in use", "error", err)
			return refused(ReasonVerificationFail, err)
		}
		s.mu.Lock()
		s.verifying = false
		s.mu.Unlock()
		s.log.Info("oidc verification login succeeded: the pending key pair is active", "kid", info.ID, "user", id.UserID)
	}
	id.Solution = s.cfg.Name
	return auth.Result{Outcome: auth.Authenticated, Identity: id, StartSession: true, Redirect: l.back}
}

func refused(reason string, err error) auth.Result {
	return auth.Result{Outcome: auth.Refused, Reason: reason, Err: err}
}

// idToken decrypts (when encrypted) and verifies the ID token of login l.
func (s *Solution) idToken(token string, l *login) (auth.Identity, string, error) {
	jws := token
	switch strings.Count(token, ".") {
	case 4:
		alg, err := jweAlg(token)
		if err != nil {
			return auth.Identity{}, ReasonDecrypt, err
		}
		if !s.encAlgs[alg] {
			return auth.Identity{}, ReasonDecrypt, fmt.Errorf("key algorithm %.40q is not in encryption_algorithms", alg)
		}
		if s.deps.KeyPairs == nil {
			return auth.Identity{}, ReasonDecrypt, errors.New("the node has no OIDC key pairs")
		}
		var plain []byte
		if l.verify {
			plain, err = s.deps.KeyPairs.DecryptPending([]byte(token))
		} else {
			plain, err = s.deps.KeyPairs.Decrypt([]byte(token))
		}
		if err != nil {
			return auth.Identity{}, ReasonDecrypt, err
		}
		jws = string(plain)
	case 2:
		if *s.cfg.RequireEncryption || l.verify {
			return auth.Identity{}, ReasonNotEncrypted, errors.New("the ID token is signed but not encrypted, and require_encryption is on")
		}
	default:
		return auth.Identity{}, jwtauth.ReasonMalformed, errors.New("the ID token is neither a JWS nor a JWE")
	}
	v, err := s.tokenVerifier()
	if err != nil {
		return auth.Identity{}, ReasonUnavailable, err
	}
	id, claims, reason, err := v.Verify(jws)
	if err != nil {
		return auth.Identity{}, reason, err
	}
	if n, _ := claims["nonce"].(string); n == "" || n != l.nonce {
		return auth.Identity{}, ReasonBadNonce, errors.New("the ID token's nonce is not the login's")
	}
	if aud, ok := claims["aud"].([]any); ok && len(aud) > 1 {
		if azp, _ := claims["azp"].(string); azp != s.cfg.ClientID {
			return auth.Identity{}, ReasonBadAZP, fmt.Errorf("azp %.80q is not the client id", azp)
		}
	}
	return id, "", nil
}

// jweAlg reads the key algorithm of a compact JWE's protected header.
func jweAlg(token string) (string, error) {
	h64, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return "", fmt.Errorf("JWE header: %w", err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", fmt.Errorf("JWE header: %w", err)
	}
	return h.Alg, nil
}

var (
	_ auth.Solution   = (*Solution)(nil)
	_ auth.Challenger = (*Solution)(nil)
	_ auth.Endpoints  = (*Solution)(nil)
	_ auth.LoginLink  = (*Solution)(nil)
)
