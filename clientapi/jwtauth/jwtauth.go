// Package jwtauth is the JWT authentication solution of the client API: it
// reads a bearer token (Authorization header, else a configured cookie),
// verifies it strictly against keys the node was configured with (PEM
// files and/or a JWK Set fetched over TLS; never a key named or carried by
// the token: jku, x5u, jwk and x5c are ignored) and maps its claims to an
// auth.Identity.
//
// Refusals carry a stable reason id (the Reason* constants). Verified
// tokens are cached by their SHA-256 until their exp, so that repeat
// requests skip the signature check; see tokenCache for when an entry is
// dropped.
package jwtauth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/loglimit"
	"github.com/edgefort/edgefort/keystore"
)

// Kind is the solution type as configured.
const Kind = "jwt"

// Reason ids of refusals: stable, they go into the audit log, the metrics
// and the 401's body.
const (
	ReasonMalformed       = "malformed"        // not a compact JWS: segments, base64, JSON, several tokens
	ReasonTooLarge        = "too_large"        // longer than max_token_bytes, refused unread
	ReasonBadAlg          = "bad_alg"          // alg not allowed, or not one the key serves
	ReasonBadTyp          = "bad_typ"          // typ not a JWT type, or a cty (nested token)
	ReasonCritUnsupported = "crit_unsupported" // any crit header
	ReasonDuplicateClaims = "duplicate_claims" // a key repeated in the header or the claims
	ReasonUnknownKID      = "unknown_kid"      // no configured key has the token's kid (or fits its alg)
	ReasonBadSignature    = "bad_signature"
	ReasonMissingExp      = "missing_exp"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"    // nbf after now + leeway
	ReasonIssuedInFuture  = "issued_in_future" // iat after now + leeway
	ReasonBadIssuer       = "bad_issuer"       // iss missing or not the configured issuer
	ReasonBadAudience     = "bad_audience"     // aud missing or none of the configured audiences
	ReasonBadUserID       = "bad_user_id"      // the user id claim missing, empty or not a string
	ReasonBadClaims       = "bad_claims"       // a claim of the wrong type
)

// Deps are what the owner hands a Solution.
type Deps struct {
	// Keystores resolves JWKSSSL. Required when JWKSURL is set.
	Keystores *keystore.Manager
	// Logger receives JWK Set fetch failures. Required.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Solution authenticates requests by JWT. Safe for concurrent use.
type Solution struct {
	cfg    Config
	algs   map[string]bool
	log    *slog.Logger
	now    func() time.Time
	keys   atomic.Pointer[keySet]
	jwks   *jwksFetcher // nil without JWKSURL
	cache  *tokenCache  // nil when the cache is off
	leeway time.Duration

	// verifications counts signature checks, for tests and benchmarks.
	verifications atomic.Int64
}

// New applies the defaults, checks cfg, reads the key files and builds the
// JWK Set client. It touches no network: the set is fetched by the first
// request that needs it.
func New(cfg Config, deps Deps) (*Solution, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		return nil, errors.New("jwt: new: a logger is required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Solution{cfg: cfg, log: deps.Logger, now: deps.Now, algs: map[string]bool{}, leeway: cfg.Leeway}
	for _, a := range cfg.Algorithms {
		s.algs[a] = true
	}
	var fileKeys []*verifyKey
	for _, f := range cfg.KeyFiles {
		keys, err := readKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("jwt %s: %w", cfg.Name, err)
		}
		fileKeys = append(fileKeys, keys...)
	}
	s.keys.Store(newKeySet(fileKeys))
	if cfg.JWKSURL != "" {
		f, err := s.newFetcher(deps, fileKeys)
		if err != nil {
			return nil, fmt.Errorf("jwt %s: jwks_url: %w", cfg.Name, err)
		}
		s.jwks = f
	}
	if cfg.cacheEnabled() {
		s.cache = newTokenCache(cfg.Cache.Size)
	}
	return s, nil
}

func (s *Solution) newFetcher(deps Deps, fileKeys []*verifyKey) (*jwksFetcher, error) {
	if deps.Keystores == nil {
		return nil, errors.New("no keystore manager to build its TLS from")
	}
	u, err := url.Parse(s.cfg.JWKSURL)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := deps.Keystores.ClientTLS(s.cfg.JWKSSSL, u.Hostname(), keystore.Vars{})
	if err != nil {
		return nil, fmt.Errorf("jwks_ssl: %w", err)
	}
	// No keep-alive: fetches are rare, and an idle connection would keep
	// a transport goroutine alive after the Solution is dropped (a reload
	// replaces it), with no one to stop it.
	transport := &http.Transport{
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   jwksTimeout,
		ResponseHeaderTimeout: jwksTimeout,
		DisableKeepAlives:     true,
	}
	return &jwksFetcher{
		url:         s.cfg.JWKSURL,
		client:      &http.Client{Transport: transport, Timeout: jwksTimeout, CheckRedirect: noRedirects},
		refresh:     s.cfg.JWKSRefresh,
		minInterval: s.cfg.JWKSMinInterval,
		now:         s.now,
		log:         s.log,
		warn:        loglimit.New(s.log, logEvery, s.now),
		fileKeys:    fileKeys,
		publish:     s.keys.Store,
	}, nil
}

// noRedirects keeps the JWK Set at the configured URL: a redirect could
// move it to a host the TLS block was not meant for.
func noRedirects(*http.Request, []*http.Request) error {
	return errors.New("redirects are not followed")
}

// Kind returns "jwt".
func (s *Solution) Kind() string { return Kind }

// Name returns the configured name, "jwt" by default.
func (s *Solution) Name() string { return s.cfg.Name }

// Authenticate reads the request's token and verifies it.
func (s *Solution) Authenticate(r *http.Request) auth.Result {
	token, found, err := s.token(r)
	if err != nil {
		return refuse(ReasonMalformed, err)
	}
	if !found {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	if len(token) > s.cfg.MaxTokenBytes {
		return refuse(ReasonTooLarge, fmt.Errorf("token of %d bytes, over the limit of %d", len(token), s.cfg.MaxTokenBytes))
	}
	now := s.now()
	var h [sha256.Size]byte
	if s.cache != nil {
		h = sha256.Sum256([]byte(token))
		if id, ok := s.cache.get(h, now, s.currentKeys()); ok {
			id.Groups = slices.Clone(id.Groups)
			return auth.Result{Outcome: auth.Authenticated, Identity: id, Cached: true}
		}
	}
	id, thumbprint, reason, err := s.verify(token, now)
	if reason != "" {
		return refuse(reason, err)
	}
	if s.cache != nil {
		s.cache.put(h, id, thumbprint)
		id.Groups = slices.Clone(id.Groups)
	}
	return auth.Result{Outcome: auth.Authenticated, Identity: id}
}

func refuse(reason string, err error) auth.Result {
	return auth.Result{Outcome: auth.Refused, Reason: reason, Err: err}
}

// token finds the request's token: an Authorization header with the
// Bearer scheme (any case), else the configured cookie. found is false
// when the request carries neither (another scheme is another solution's).
// Several tokens are an error: which one a backend or a proxy on the way
// would pick is not ours to guess.
func (s *Solution) token(r *http.Request) (token string, found bool, err error) {
	var bearer []string
	for _, v := range r.Header.Values("Authorization") {
		scheme, rest, _ := strings.Cut(v, " ")
		if strings.EqualFold(scheme, "Bearer") {
			bearer = append(bearer, strings.TrimLeft(rest, " "))
		}
	}
	switch {
	case len(bearer) > 1:
		return "", true, fmt.Errorf("%d bearer Authorization headers", len(bearer))
	case len(bearer) == 1:
		// IndexByte, not ContainsAny: this runs on every request.
		if bearer[0] == "" || strings.IndexByte(bearer[0], ' ') >= 0 || strings.IndexByte(bearer[0], '\t') >= 0 {
			return "", true, errors.New("the bearer Authorization header does not hold exactly one token")
		}
		return bearer[0], true, nil
	case s.cfg.Cookie == "":
		return "", false, nil
	}
	cookies := r.CookiesNamed(s.cfg.Cookie)
	switch {
	case len(cookies) == 0:
		return "", false, nil
	case len(cookies) > 1:
		return "", true, fmt.Errorf("cookie %s sent %d times", s.cfg.Cookie, len(cookies))
	case cookies[0].Value == "":
		return "", true, fmt.Errorf("cookie %s is empty", s.cfg.Cookie)
	}
	return cookies[0].Value, true, nil
}

// currentKeys returns the key set, refreshing a JWK Set that is due.
func (s *Solution) currentKeys() *keySet {
	if s.jwks != nil {
		s.jwks.ensure()
	}
	return s.keys.Load()
}

var _ auth.Solution = (*Solution)(nil)
