package cloudclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/internal/retryafter"
)

// assertionLifetime is how long an assertion is valid: short, well under
// api.AssertionMaxLifetime.
const assertionLifetime = 2 * time.Minute

// Refresh margins: a token is refreshed when max(lifetime/5, 60 s) of its
// lifetime is left, but never earlier than half-way through it, so that a
// short-lived token is not refreshed on every call.
const (
	refreshFraction  = 5
	refreshMinMargin = 60 * time.Second
	// failedRefreshPause is the longest wait after a failed refresh before
	// the next try, while the old token stays valid.
	failedRefreshPause = 5 * time.Second
)

// accessToken is a cached access token. Times are on the local clock.
type accessToken struct {
	value   string
	expires time.Time // past it the token is not used
	refresh time.Time // past it a call fetches a new one first
}

// KeyID returns the key ID of a device public key: its RFC 7638 JWK
// thumbprint (SHA-256), base64url without padding. Assertions carry it as
// kid. Keys are ECDSA P-256 or RSA.
func KeyID(pub crypto.PublicKey) (string, error) {
	var jwk string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on %s: want P-256", k.Curve.Params().Name)
		}
		pk, err := k.ECDH()
		if err != nil {
			return "", err
		}
		pt := pk.Bytes() // 0x04 || X || Y, 32 bytes each
		// Members in lexicographic order, no white space (RFC 7638 §3).
		jwk = fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, b64(pt[1:33]), b64(pt[33:65]))
	case *rsa.PublicKey:
		e := big.NewInt(int64(k.E)).Bytes()
		jwk = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(e), b64(k.N.Bytes()))
	default:
		return "", fmt.Errorf("unsupported key type %T: want ECDSA P-256 or RSA", pub)
	}
	sum := sha256.Sum256([]byte(jwk))
	return b64(sum[:]), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signingMethod picks ES256 or RS256 for a device key.
func signingMethod(pub crypto.PublicKey) (jwt.SigningMethod, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s: want P-256", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: want 2048 or more", k.N.BitLen())
		}
		return jwt.SigningMethodRS256, nil
	}
	return nil, fmt.Errorf("unsupported key type %T: want ECDSA P-256 or RSA", pub)
}

// assertion makes a new RFC 7523 client assertion: iss = sub = device ID,
// aud = token URL, two minutes of validity, a fresh 128-bit jti. It is
// signed through crypto.Signer, so a key held in hardware works too.
func (c *Client) assertion() (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := c.now()
	claims := jwt.RegisteredClaims{
		Issuer:    c.deviceID,
		Subject:   c.deviceID,
		Audience:  jwt.ClaimStrings{c.tokenURL},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(assertionLifetime)),
		ID:        b64(jti),
	}
	return signJWT(c.key, c.alg, c.kid, claims)
}

// signJWT signs claims with key (ES256 or RS256 per alg) under kid.
func signJWT(key crypto.Signer, alg jwt.SigningMethod, kid string, claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(alg, claims)
	t.Header["kid"] = kid
	input, err := t.SigningString()
	if err != nil {
		return "", err
	}
	digest := sha256.Sum256([]byte(input))
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	if alg == jwt.SigningMethodES256 {
		// crypto.Signer gives ASN.1 DER; JWS wants R || S (RFC 7518 §3.4).
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err != nil {
			return "", fmt.Errorf("sign assertion: %w", err)
		}
		raw := make([]byte, 64)
		rs.R.FillBytes(raw[:32])
		rs.S.FillBytes(raw[32:])
		sig = raw
	}
	return input + "." + b64(sig), nil
}

// Token returns an access token for device calls: the cached one, or a
// new one when it is close to expiry (see refreshMinMargin). Concurrent
// callers share one fetch. When a refresh fails while the cached token is
// still valid, Token logs and returns the cached one.
func (c *Client) Token(ctx context.Context) (string, error) {
	t, err := c.token(ctx)
	if err != nil {
		return "", fmt.Errorf("cloudclient: token: %w", err)
	}
	return t, nil
}

func (c *Client) token(ctx context.Context) (string, error) {
	if c.key == nil {
		return "", errors.New("no device ID and key configured")
	}
	if t := c.cached(); t != nil && c.now().Before(t.refresh) {
		return t.value, nil
	}
	// The fetch outlives a caller that gives up, so that the others
	// sharing it still get its result; attempts are bounded by Timeout.
	fctx := context.WithoutCancel(ctx)
	ch := c.flight.DoChan("token", func() (any, error) { return c.refreshToken(fctx) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

func (c *Client) cached() *accessToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tok
}

// dropToken forgets the cached token if it is still used, the one the
// server just refused.
func (c *Client) dropToken(used string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && c.tok.value == used {
		c.tok = nil
	}
}

// refreshToken runs once per flight: it fetches a new token unless a
// flight that just ended already did.
func (c *Client) refreshToken(ctx context.Context) (string, error) {
	old := c.cached()
	now := c.now()
	if old != nil && now.Before(old.refresh) {
		return old.value, nil
	}
	t, err := c.fetchToken(ctx)
	if err == nil {
		c.mu.Lock()
		c.tok = t
		c.mu.Unlock()
		return t.value, nil
	}
	now = c.now()
	if old == nil || !now.Before(old.expires) || errors.Is(err, ErrUnauthorized) {
		return "", err
	}
	c.log.Warn("cloudclient: token refresh failed; using the current token until it expires",
		logKeyError, err, "expires_in", old.expires.Sub(now).Round(time.Second))
	keep := *old
	keep.refresh = now.Add(min(failedRefreshPause, old.expires.Sub(now)/2))
	c.mu.Lock()
	if c.tok == old {
		c.tok = &keep
	}
	c.mu.Unlock()
	return old.value, nil
}

// fetchToken runs the JWT-bearer grant, retrying on ErrUnavailable with a
// new assertion each time (an assertion is never sent twice).
func (c *Client) fetchToken(ctx context.Context) (*accessToken, error) {
	for n := 0; ; n++ {
		t, err := c.tokenAttempt(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) || n+1 >= c.retry.Attempts || ctx.Err() != nil {
			return t, err
		}
		delay := c.backoff(n, err)
		c.log.Debug("cloudclient: retrying", logKeyCall, "token", logKeyAttempt, n+1, logKeyDelay, delay, logKeyError, err)
		if err := backoff.Sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

func (c *Client) tokenAttempt(ctx context.Context) (*accessToken, error) {
	assertion, err := c.assertion()
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {api.GrantTypeJWTBearer}, "assertion": {assertion}}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// Lifetimes run from when the request left, on the local clock: never
	// later than the server's issue time, and immune to its clock's skew.
	sent := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.oauthError(resp)
	}
	b, err := readReply(ctx, resp, maxTokenReply, "token reply")
	if err != nil {
		return nil, err
	}
	var tr api.TokenResponse
	if err := httpbody.DecodeJSON(b, &tr, "token reply"); err != nil {
		return nil, badReply(resp.StatusCode, err)
	}
	switch {
	case tr.AccessToken == "":
		return nil, &ResponseError{Status: resp.StatusCode, Message: "token response has no access_token"}
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		return nil, &ResponseError{Status: resp.StatusCode, Message: fmt.Sprintf("token_type %q: want Bearer", tr.TokenType)}
	case tr.ExpiresIn <= 0:
		return nil, &ResponseError{Status: resp.StatusCode, Message: fmt.Sprintf("expires_in %d: want > 0", tr.ExpiresIn)}
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	margin := min(max(life/refreshFraction, refreshMinMargin), life/2)
	expires := sent.Add(life)
	return &accessToken{value: tr.AccessToken, expires: expires, refresh: expires.Add(-margin)}, nil
}

// oauthError reads the token endpoint's RFC 6749 §5.2 error. A grant or
// client the server refuses is ErrUnauthorized.
func (c *Client) oauthError(resp *http.Response) error {
	b, cut := httpbody.Message(resp)
	var oe api.OAuthError
	if cut || json.Unmarshal(b, &oe) != nil || oe.Code == "" {
		return newResponseError(resp, b, cut, c.now())
	}
	switch oe.Code {
	case "invalid_grant", "invalid_client":
		return fmt.Errorf("%w: %s: %s", ErrUnauthorized, oe.Code, oe.Description)
	}
	e := &ResponseError{Status: resp.StatusCode, Code: oe.Code, Message: oe.Description}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.retryAfter = retryafter.FromHeader(resp.Header, c.now())
	}
	return e
}
