package devcloud

import (
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// Token endpoint, access tokens, user tokens and the JWKS.

const (
	assertionLeeway = 30 * time.Second
	// maxJTIs bounds the replay cache; jtis are forgotten once their
	// assertion has expired.
	maxJTIs       = 1 << 16
	jwksMaxAge    = 5 * time.Minute
	maxTokenForm  = 64 << 10
	wwwAuthBearer = `Bearer error="invalid_token"`
)

// errReplayCacheFull is answered 503: too many live assertions to
// remember.
var errReplayCacheFull = errors.New("assertion replay cache full")

func (c *ControlPlane) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		c.oauthFail(w, r, "invalid_request", "content type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		c.oauthFail(w, r, "invalid_request", "read form: "+err.Error())
		return
	}
	form := r.PostForm
	for _, p := range []string{"grant_type", "assertion"} {
		if len(form[p]) > 1 {
			c.oauthFail(w, r, "invalid_request", p+" repeated")
			return
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		c.oauthFail(w, r, "invalid_request", "grant_type missing")
		return
	case api.GrantTypeJWTBearer:
	default:
		c.oauthFail(w, r, "unsupported_grant_type", "grant_type must be "+api.GrantTypeJWTBearer)
		return
	}
	assertion := form.Get("assertion")
	if assertion == "" {
		c.oauthFail(w, r, "invalid_request", "assertion missing")
		return
	}
	dev, err := c.verifyAssertion(assertion)
	if errors.Is(err, errReplayCacheFull) {
		c.fail(w, r, http.StatusServiceUnavailable, api.CodeUnavailable, "%v", err)
		return
	}
	if err != nil {
		c.oauthFail(w, r, "invalid_grant", err.Error())
		return
	}
	tok, err := c.issueAccessToken(dev.ID)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, api.CodeInternal, "sign access token: %v", err)
		return
	}
	c.stats.tokensIssued.Add(1)
	c.log.Debug("access token issued", "device", dev.ID)
	writeJSON(w, http.StatusOK, api.TokenResponse{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int(c.opts.TokenLifetime / time.Second),
	})
}

// oauthFail answers 400 with an OAuth error body (RFC 6749 §5.2).
func (c *ControlPlane) oauthFail(w http.ResponseWriter, r *http.Request, code, desc string) {
	c.stats.tokensRefused.Add(1)
	c.log.Info("token request refused", "error", code, "description", desc)
	writeJSON(w, http.StatusBadRequest, api.OAuthError{Code: code, Description: desc})
}

// verifyAssertion checks an RFC 7523 assertion against the enrolled
// devices and remembers its jti; the error names the failed check.
func (c *ControlPlane) verifyAssertion(assertion string) (*EnrolledDevice, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256", "RS256"}),
		jwt.WithLeeway(assertionLeeway),
		jwt.WithTimeFunc(c.now),
		jwt.WithAudience(c.TokenURL()),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	var claims jwt.RegisteredClaims
	var dev *EnrolledDevice
	_, err := p.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("no kid in header")
		}
		c.mu.Lock()
		dev = c.byKID[kid]
		c.mu.Unlock()
		if dev == nil {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return dev.PublicKey, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("assertion expired")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, fmt.Errorf("assertion aud must be %s", c.TokenURL())
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, errors.New("assertion iat is in the future")
	default:
		return nil, fmt.Errorf("assertion: %v", err)
	}
	now := c.now()
	switch {
	case claims.IssuedAt == nil:
		return nil, errors.New("assertion: iat missing")
	case claims.Issuer != dev.ID || claims.Subject != dev.ID:
		return nil, fmt.Errorf("assertion iss and sub must both be the device id of kid (%s)", dev.ID)
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > api.AssertionMaxLifetime:
		return nil, fmt.Errorf("assertion lifetime exp-iat over %v", api.AssertionMaxLifetime)
	case claims.ID == "":
		return nil, errors.New("assertion: jti missing")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, seen := c.jtis[dev.ID+"\x00"+claims.ID]; seen && now.Before(exp.Add(assertionLeeway)) {
		return nil, errors.New("assertion jti already used")
	}
	if len(c.jtis) >= maxJTIs {
		c.pruneJTIsLocked(now)
		if len(c.jtis) >= maxJTIs {
			return nil, errReplayCacheFull
		}
	}
	c.jtis[dev.ID+"\x00"+claims.ID] = claims.ExpiresAt.Time
	return dev, nil
}

// pruneJTIsLocked forgets the jtis of assertions that can no longer be
// accepted anyway.
func (c *ControlPlane) pruneJTIsLocked(now time.Time) {
	for k, exp := range c.jtis {
		if now.After(exp.Add(assertionLeeway)) {
			delete(c.jtis, k)
		}
	}
}

// issueAccessToken signs an access token for a device.
func (c *ControlPlane) issueAccessToken(deviceID string) (string, error) {
	now := c.now()
	c.mu.Lock()
	expired := c.faults.ExpiredTokens
	c.mu.Unlock()
	iat, exp := now, now.Add(c.opts.TokenLifetime)
	if expired {
		iat, exp = now.Add(-c.opts.TokenLifetime-time.Minute), now.Add(-time.Minute)
	}
	claims := jwt.RegisteredClaims{
		Issuer:    c.URL(),
		Subject:   deviceID,
		Audience:  jwt.ClaimStrings{cpAccessAudience},
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        newID(),
	}
	return jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(c.accessKey)
}

// device wraps a handler of a bearer-authenticated call: it checks the
// access token, that {id} (when the path has one) is the token's device,
// and that a TLS client certificate, when presented, is that device's.
func (c *ControlPlane) device(h func(http.ResponseWriter, *http.Request, *EnrolledDevice)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		once := c.faults.Unauthorized401Once
		c.faults.Unauthorized401Once = false
		c.mu.Unlock()
		if once {
			c.stats.faultsInjected.Add(1)
			c.unauthorized(w, r, "access token expired (injected)")
			return
		}
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			c.unauthorized(w, r, "no bearer token")
			return
		}
		dev, err := c.verifyAccessToken(tok)
		if err != nil {
			c.unauthorized(w, r, err.Error())
			return
		}
		if id := r.PathValue("id"); id != "" && id != dev.ID {
			c.forbidden(w, r, "token is for another device")
			return
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			pub, ok := r.TLS.PeerCertificates[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !pub.Equal(dev.PublicKey) {
				c.forbidden(w, r, "client certificate is not the token's device's")
				return
			}
		}
		h(w, r, dev)
	}
}

func (c *ControlPlane) verifyAccessToken(tok string) (*EnrolledDevice, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithTimeFunc(c.now),
		jwt.WithAudience(cpAccessAudience),
		jwt.WithIssuer(c.URL()),
		jwt.WithExpirationRequired(),
	)
	var claims jwt.RegisteredClaims
	_, err := p.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return &c.accessKey.PublicKey, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("access token expired")
	case err != nil:
		return nil, fmt.Errorf("access token: %v", err)
	}
	c.mu.Lock()
	dev := c.devices[claims.Subject]
	c.mu.Unlock()
	if dev == nil {
		return nil, errors.New("access token: no such device")
	}
	return dev, nil
}

func (c *ControlPlane) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	c.stats.unauthorized.Add(1)
	w.Header().Set("WWW-Authenticate", wwwAuthBearer)
	c.fail(w, r, http.StatusUnauthorized, api.CodeUnauthorized, "%s", msg)
}

func (c *ControlPlane) forbidden(w http.ResponseWriter, r *http.Request, msg string) {
	c.stats.forbidden.Add(1)
	c.fail(w, r, http.StatusForbidden, api.CodeForbidden, "%s", msg)
}

// userClaims are the claims of a user token.
type userClaims struct {
	jwt.RegisteredClaims
	Directory  string              `json:"directory"`
	Groups     []string            `json:"groups,omitempty"`
	Attributes map[string][]string `json:"attributes,omitempty"`
}

// MintUserToken makes a user JWT as the cloud's identity service would:
// ES256, signed with the JWKS key (kid in the header), sub = u.ID, iss =
// URL(), aud "edgefort", iat, exp = now + ttl, a jti, and the claims
// "directory", "groups" and "attributes" (the last two when not empty).
// It needs the server started (the issuer is its URL).
func (c *ControlPlane) MintUserToken(u api.User, ttl time.Duration) (string, error) {
	if c.URL() == "" {
		return "", errors.New("control plane: mint user token: not started")
	}
	if u.ID == "" || ttl <= 0 {
		return "", errors.New("control plane: mint user token: need a user ID and a positive ttl")
	}
	now := c.now()
	claims := userClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.URL(),
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{UserTokenAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        newID(),
		},
		Directory:  u.Directory,
		Groups:     u.Groups,
		Attributes: u.Attributes,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = c.userKID
	return t.SignedString(c.userKey)
}

// JWKS is the public key set of user tokens, as served at api.PathJWKS.
func (c *ControlPlane) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &c.userKey.PublicKey,
		KeyID:     c.userKID,
		Algorithm: string(jose.ES256),
		Use:       "sig",
	}}}
}

func (c *ControlPlane) handleJWKS(w http.ResponseWriter, r *http.Request) {
	c.stats.jwksCalls.Add(1)
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(jwksMaxAge/time.Second)))
	writeJSON(w, http.StatusOK, c.JWKS())
}
