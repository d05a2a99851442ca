package devstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/edgefort/edgefort/internal/httpbody"
)

// Limits of the engine's identity checks.
const (
	// maxIdentityToken is the longest identity JWT read; the node's are
	// well under 2 KiB.
	maxIdentityToken = 8 << 10
	// maxJWKSBytes bounds the JWK Set read from the node.
	maxJWKSBytes = 1 << 20
	// jwksRefetch is the least time between two fetches of the JWK Set
	// caused by unknown kids.
	jwksRefetch = 2 * time.Second
	// tokenLeeway is the clock skew allowed on exp, nbf and iat.
	tokenLeeway = 5 * time.Second
)

// received is the identity a request brought to the engine, as received:
// what the demo shows and asserts.
type received struct {
	App        string `json:"app,omitempty"`
	Method     string `json:"method"`
	Path       string `json:"path"`
	RemoteAddr string `json:"remote_addr"`
	// Host is the Host header as received: the node passes the client's.
	Host string `json:"host"`
	// Seq numbers the API requests the engine has received, this one
	// included: the demo shows with it that a refused request never
	// reached the engine.
	Seq       int64             `json:"seq"`
	Headers   identityHeaders   `json:"headers"`
	JWT       *receivedJWT      `json:"jwt,omitempty"`
	Forwarded map[string]string `json:"forwarded"`
}

// identityHeaders are the node's plain identity headers, verbatim.
type identityHeaders struct {
	User      string `json:"user"`
	Directory string `json:"directory"`
	Groups    string `json:"groups"`
}

// receivedJWT is the identity token the request carried.
type receivedJWT struct {
	Verified bool           `json:"verified"`
	KeyID    string         `json:"kid,omitempty"`
	Claims   map[string]any `json:"claims,omitempty"`
	// Note says why the token was not verified (no JWKS URL configured).
	Note string `json:"note,omitempty"`
}

// forwardingHeaders are shown as received, each under its own name.
var forwardingHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"}

// errNoJWKS is a failure to get the node's keys, as opposed to a token
// that does not verify.
var errNoJWKS = errors.New("node's JWKS unavailable")

// identity reads what r brought. A token that does not verify is an error
// (the request is refused, as a real backend refuses it); one that cannot
// be checked for want of the JWKS wraps errNoJWKS.
func (e *engine) identity(r *http.Request) (received, error) {
	rec := received{
		Method: r.Method, Path: r.URL.Path, RemoteAddr: r.RemoteAddr, Host: r.Host, Seq: e.seq.Add(1),
		Headers: identityHeaders{
			User:      r.Header.Get("X-Edgefort-User"),
			Directory: r.Header.Get("X-Edgefort-Directory"),
			Groups:    r.Header.Get("X-Edgefort-Groups"),
		},
		Forwarded: map[string]string{},
	}
	for _, h := range forwardingHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			rec.Forwarded[h] = joinValues(v)
		}
	}
	tok := r.Header.Get(e.opts.IdentityHeader)
	if tok == "" {
		return rec, nil
	}
	jwks := e.jwks.Load()
	if jwks == nil {
		rec.JWT = &receivedJWT{Note: "not verified: the engine was given no JWKS URL"}
		return rec, nil
	}
	kid, claims, err := e.verify(r.Context(), jwks, tok)
	if err != nil {
		return rec, fmt.Errorf("identity token: %w", err)
	}
	rec.JWT = &receivedJWT{Verified: true, KeyID: kid, Claims: claims}
	return rec, nil
}

func joinValues(v []string) string {
	out := v[0]
	for _, s := range v[1:] {
		out += ", " + s
	}
	return out
}

// verify checks tok's signature against the node's JWK Set and its
// registered claims, and returns its kid and claims.
func (e *engine) verify(ctx context.Context, jwks *jwksCache, tok string) (string, map[string]any, error) {
	if len(tok) > maxIdentityToken {
		return "", nil, fmt.Errorf("%d bytes, over the limit of %d", len(tok), maxIdentityToken)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return "", nil, err
	}
	kid := parsed.Headers[0].KeyID
	key, err := jwks.key(ctx, kid)
	if err != nil {
		return kid, nil, err
	}
	var std jwt.Claims
	var all map[string]any
	if err := parsed.Claims(key.Key, &std, &all); err != nil {
		return kid, nil, err
	}
	if std.Expiry == nil {
		return kid, nil, errors.New("no exp claim")
	}
	want := jwt.Expected{Issuer: e.opts.Issuer, Time: time.Now()}
	if e.opts.Audience != "" {
		want.AnyAudience = jwt.Audience{e.opts.Audience}
	}
	if err := std.ValidateWithLeeway(want, tokenLeeway); err != nil {
		return kid, nil, err
	}
	return kid, all, nil
}

// jwksCache holds the node's JWK Set, fetched when first needed and again
// when a token names a kid it lacks (at most every jwksRefetch).
type jwksCache struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex // guards set and fetched; held across a fetch, so one runs at a time
	set     *jose.JSONWebKeySet
	fetched time.Time
}

func newJWKSCache(url string, roots *x509.CertPool) *jwksCache {
	return &jwksCache{url: url, now: time.Now, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
	}}}
}

func (c *jwksCache) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set != nil {
		if keys := c.set.Key(kid); len(keys) > 0 {
			return &keys[0], nil
		}
		if c.now().Sub(c.fetched) < jwksRefetch {
			return nil, fmt.Errorf("kid %q is not in the node's JWKS", kid)
		}
	}
	set, err := c.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoJWKS, err)
	}
	c.set, c.fetched = set, c.now()
	if keys := set.Key(kid); len(keys) > 0 {
		return &keys[0], nil
	}
	return nil, fmt.Errorf("kid %q is not in the node's JWKS", kid)
}

func (c *jwksCache) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", c.url, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := httpbody.ReadJSON(resp, maxJWKSBytes, "JWKS from "+c.url, &set); err != nil {
		return nil, err
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("JWKS from %s holds a private key (kid %q)", c.url, k.KeyID)
		}
	}
	return &set, nil
}
