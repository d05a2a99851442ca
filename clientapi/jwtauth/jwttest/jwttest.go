// Package jwttest builds JWTs for tests of the JWT solution and of the
// client API around it: valid tokens, and Corpus, the attack corpus every
// one of which a correctly configured solution refuses with a known reason
// id. Test-only: the product never imports it (scripts/layers,
// cmd/edgefort/deps_test.go).
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Setup is what the corpus must know of the solution under test.
type Setup struct {
	// Key is a key the solution trusts (RS256); KID its kid as the
	// solution knows it (the JWK Set's kid, or the RFC 7638 thumbprint for
	// a key file).
	Key *rsa.PrivateKey
	KID string
	// Issuer and Audience are the configured ones (one audience is enough).
	Issuer, Audience string
	// Now is the solution's clock.
	Now time.Time
	// Cookie is the configured cookie, "" when none.
	Cookie string
	// MaxTokenBytes is the configured limit; 0 means the default, 8192.
	MaxTokenBytes int
	// RemovedKey, when set, is a key the solution trusted once and that
	// is no longer in its JWK Set, with its kid.
	RemovedKey *rsa.PrivateKey
	RemovedKID string
}

// Case is one request carrying a token the solution must not accept.
type Case struct {
	Name string
	// Authorization holds the Authorization header values to send.
	Authorization []string
	// Cookies are sent as they are.
	Cookies []*http.Cookie
	// Outcome is what the solution must answer: Refused, with Reason, in
	// every case but a token where it must not look (NoCredentials).
	Outcome auth.Outcome
	Reason  string
}

// Apply puts the case's credentials on r.
func (c Case) Apply(r *http.Request) {
	for _, v := range c.Authorization {
		r.Header.Add("Authorization", v)
	}
	for _, ck := range c.Cookies {
		r.AddCookie(ck)
	}
}

// Claims are valid claims for s, for UserID "alice": iat now, exp in an
// hour, groups ["staff"].
func Claims(s Setup) map[string]any {
	return map[string]any{
		"iss":    s.Issuer,
		"aud":    s.Audience,
		"sub":    "alice",
		"iat":    s.Now.Unix(),
		"exp":    s.Now.Add(time.Hour).Unix(),
		"groups": []string{"staff"},
		"jti":    rand.Text(),
	}
}

// Valid is a valid token for s.
func Valid(t testing.TB, s Setup) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodRS256, s.Key, map[string]any{"alg": "RS256", "typ": "JWT", "kid": s.KID}, Claims(s))
}

// Sign signs header and claims (marshalled as JSON) with method and key.
func Sign(t testing.TB, method jwt.SigningMethod, key any, header, claims map[string]any) string {
	t.Helper()
	return SignRaw(t, method, key, mustJSON(t, header), mustJSON(t, claims))
}

// SignRaw signs header and claims given as JSON text, for JSON that a
// marshaller would not write (duplicate keys, escapes).
func SignRaw(t testing.TB, method jwt.SigningMethod, key any, header, claims string) string {
	t.Helper()
	input := Encode(header) + "." + Encode(claims)
	sig, err := method.Sign(input, key)
	if err != nil {
		t.Fatalf("jwttest: sign %s: %v", method.Alg(), err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Encode is base64url without padding, as in a token.
func Encode(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("jwttest: marshal: %v", err)
	}
	return string(b)
}

// attackerKeys are generated once per test binary: an RSA key is slow to
// make under -race.
var attackerKeys = sync.OnceValues(func() (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return r, e
})

// AttackerKeys returns the keys the corpus signs its forged tokens with:
// the solution under test must trust neither.
func AttackerKeys() (*rsa.PrivateKey, *ecdsa.PrivateKey) { return attackerKeys() }

// publicJWK is the public JWK of key with kid, as JSON.
func publicJWK(t testing.TB, key crypto.PublicKey, kid string) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, KeyID: kid, Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatalf("jwttest: jwk: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// selfSigned is a certificate for key, for x5c headers.
func selfSigned(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("jwttest: certificate: %v", err)
	}
	return der
}

// Thumbprint is the RFC 7638 (SHA-256) thumbprint of pub: the kid the
// solution gives a key read from a key file.
func Thumbprint(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("jwttest: thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}
