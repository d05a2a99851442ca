// Package backendjwt owns the identity the node hands to local backends as
// a JWT: short-lived tokens signed with a keystore alias, carrying the user
// the client API authenticated, and the JWK Set with which a backend
// verifies them. The signing key is resolved from the keystore at every
// token, so repointing a reference rotates it with no restart, as it does
// a virtual host's certificate; the key it replaces stays in the JWK Set
// for one token lifetime, so that tokens signed just before still verify.
//
// An RSA signature costs about a millisecond, far more than proxying a
// request, so a token is reused for the same identity and key until half
// of its lifetime has passed (a bounded cache).
package backendjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/loglimit"
	"github.com/edgefort/edgefort/keystore"
)

// Log keys.
const (
	logFieldKID    = "kid"
	logFieldOldKID = "previous_kid"
	logFieldError  = "error"
)

// cacheSize bounds the tokens kept for reuse: one per identity seen in
// the last half token lifetime, which covers the users of a node.
const cacheSize = 10000

// maxPrevious bounds the retired keys kept in the JWK Set: more
// rotations than this within one token lifetime drop the oldest.
const maxPrevious = 8

// retireSlack keeps a replaced key published a little longer than one
// TTL: a token being signed with it while the rotation happens expires a
// moment after the rotation's TTL, and verifiers allow some clock skew.
const retireSlack = 5 * time.Second

// warnEvery spaces out the warning of a signing key that does not resolve.
const warnEvery = time.Minute

// minRSABits refuses RSA keys too short to sign with.
const minRSABits = 2048

// Deps are what a Minter is given besides its configuration.
type Deps struct {
	// Keystores resolves Config.Keystore. Required.
	Keystores *keystore.Manager
	// Issuer is the iss claim when Config.Issuer is empty (the node's
	// identity). One of the two is required.
	Issuer string
	// Logger receives key rotations. Required.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Minter signs identity tokens and serves the keys that verify them. It is
// safe for concurrent use.
type Minter struct {
	cfg Config
	ks  *keystore.Manager
	log *slog.Logger
	now func() time.Time

	cur  atomic.Pointer[signingKey] // the key in use; rotated by use
	warn *loglimit.Limiter

	mu       sync.Mutex   // guards previous and serialises rotations
	previous []retiredKey // keys replaced less than one TTL ago, oldest first

	cache tokenCache
}

// retiredKey is a replaced key, still published until until.
type retiredKey struct {
	key   *signingKey
	until time.Time
}

// New checks cfg and resolves its key now, so that a keystore or alias that
// does not exist fails here with its name. It starts nothing.
func New(cfg Config, deps Deps) (*Minter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Keystores == nil || deps.Logger == nil {
		return nil, errors.New("backendjwt: keystores and logger required")
	}
	cfg = cfg.withDefaults(deps.Issuer)
	if cfg.Issuer == "" {
		return nil, &auth.FieldError{Field: "issuer", Err: errors.New("required: no default issuer was given")}
	}
	m := &Minter{cfg: cfg, ks: deps.Keystores, log: deps.Logger, now: deps.Now}
	if m.now == nil {
		m.now = time.Now
	}
	m.warn = loglimit.New(m.log, warnEvery, m.now)
	m.cache.entries = make(map[[32]byte]cachedToken)
	if _, err := m.key(); err != nil {
		return nil, err
	}
	return m, nil
}

// Header is the request header the token goes in.
func (m *Minter) Header() string { return http.CanonicalHeaderKey(m.cfg.Header) }

// claims are the token's claims (RFC 7519 registered ones, then ours).
type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud,omitempty"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	ID        string   `json:"jti"`
	Directory string   `json:"directory,omitempty"`
	Groups    []string `json:"groups"`
	Solution  string   `json:"solution,omitempty"`
	Anonymous bool     `json:"anonymous,omitempty"`
}

// Mint returns a token for id: a cached one when the same identity got one
// with the same key less than half a TTL ago, else a new one.
func (m *Minter) Mint(id auth.Identity) (string, error) {
	if id.UserID == "" {
		return "", errors.New("backendjwt: identity has no user id")
	}
	k, err := m.key()
	if err != nil {
		return "", fmt.Errorf("backendjwt: signing key: %w", err)
	}
	now := m.now()
	ck := cacheKey(k.kid, id)
	if tok, ok := m.cache.get(ck, now, m.cfg.TTL/2); ok {
		return tok, nil
	}
	var jti [16]byte
	rand.Read(jti[:])
	c := claims{
		Issuer: m.cfg.Issuer, Subject: id.UserID, Audience: m.cfg.Audience,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(m.cfg.TTL).Unix(),
		ID: b64(jti[:]), Directory: id.Directory, Groups: id.Groups, Solution: id.Solution, Anonymous: id.Anonymous,
	}
	if c.Groups == nil {
		c.Groups = []string{}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("backendjwt: encode claims: %w", err)
	}
	tok, err := k.sign(payload)
	if err != nil {
		return "", fmt.Errorf("backendjwt: sign with key %s: %w", k.kid, err)
	}
	m.cache.put(ck, cachedToken{token: tok, issued: now}, now, m.cfg.TTL/2)
	return tok, nil
}

// key returns the signing key as the keystore holds it now. The usual
// case, the same entry as before, is an atomic load and two map lookups.
func (m *Minter) key() (*signingKey, error) {
	st, err := m.ks.Resolve(m.cfg.Keystore, keystore.KindKeystore)
	if err != nil {
		return nil, &auth.FieldError{Field: "keystore", Err: err}
	}
	e, err := st.Pick(m.cfg.KeyAlias)
	if err != nil {
		field := "keystore"
		if m.cfg.KeyAlias != "" {
			field = "key_alias"
		}
		return nil, &auth.FieldError{Field: field, Err: err}
	}
	if k := m.cur.Load(); k != nil && k.entry == e {
		return k, nil
	}
	return m.rotate(e)
}

// rotate makes e's key the one in use, keeping the one it replaces
// published for a TTL.
func (m *Minter) rotate(e *keystore.Entry) (*signingKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.cur.Load()
	if old != nil && old.entry == e {
		return old, nil
	}
	k, err := newSigningKey(e)
	if err != nil {
		field := "keystore"
		if m.cfg.KeyAlias != "" {
			field = "key_alias"
		}
		return nil, &auth.FieldError{Field: field, Err: fmt.Errorf("alias %q: %w", e.Alias, err)}
	}
	m.cur.Store(k)
	if old == nil || old.kid == k.kid {
		return k, nil
	}
	// A token signed by old expires at most one TTL from now. A key
	// retired before (a reference flipped back and forth) is listed once.
	m.previous = slices.DeleteFunc(m.previous, func(p retiredKey) bool { return p.key.kid == old.kid || p.key.kid == k.kid })
	m.previous = append(m.previous, retiredKey{key: old, until: m.now().Add(m.cfg.TTL + retireSlack)})
	if len(m.previous) > maxPrevious {
		m.previous = m.previous[len(m.previous)-maxPrevious:]
	}
	m.log.Info("identity token signing key changed", logFieldKID, k.kid, logFieldOldKID, old.kid)
	return k, nil
}

// signingKey is one keystore entry's key, ready to sign.
type signingKey struct {
	entry  *keystore.Entry // what it was built from, to notice a change
	kid    string
	signer crypto.Signer
	ecSize int    // ES256: the byte length of r and s; 0 for RSA
	header string // base64url of the JOSE header, with the "." after it
	jwk    jose.JSONWebKey
}

func newSigningKey(e *keystore.Entry) (*signingKey, error) {
	if e.Key == nil {
		return nil, errors.New("has no private key")
	}
	k := &signingKey{entry: e, signer: e.Key}
	var alg string
	switch pub := e.Key.Public().(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at least %d needed to sign", pub.N.BitLen(), minRSABits)
		}
		alg = string(jose.RS256)
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s: only P-256 (ES256) signs identity tokens", pub.Curve.Params().Name)
		}
		alg, k.ecSize = string(jose.ES256), 32
	default:
		return nil, fmt.Errorf("key of type %T: want RSA (RS256) or ECDSA P-256 (ES256)", pub)
	}
	pub := jose.JSONWebKey{Key: e.Key.Public(), Algorithm: alg, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	k.kid = b64(tp)
	pub.KeyID = k.kid
	k.jwk = pub
	hdr, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, k.kid, "JWT"})
	k.header = b64(hdr) + "."
	return k, nil
}

// sign returns the compact JWS of payload (RFC 7515 section 7.1).
func (k *signingKey) sign(payload []byte) (string, error) {
	var sb strings.Builder
	sb.Grow(len(k.header) + base64.RawURLEncoding.EncodedLen(len(payload)) + 1 + 512)
	sb.WriteString(k.header)
	sb.WriteString(b64(payload))
	digest := crypto.SHA256.New()
	digest.Write([]byte(sb.String()))
	sig, err := k.signer.Sign(rand.Reader, digest.Sum(nil), crypto.SHA256)
	if err != nil {
		return "", err
	}
	if k.ecSize > 0 {
		if sig, err = rawECDSA(sig, k.ecSize); err != nil {
			return "", err
		}
	}
	sb.WriteByte('.')
	sb.WriteString(b64(sig))
	return sb.String(), nil
}

// rawECDSA turns a crypto.Signer's ASN.1 ECDSA signature into JWS's r||s,
// each left-padded to size bytes (RFC 7518 section 3.4).
func rawECDSA(der []byte, size int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) > 0 || rs.R == nil || rs.S == nil {
		return nil, errors.New("signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// cacheKey identifies a token by the key that signs it and every identity
// field that goes into it, each length-prefixed so that no two identities
// share a key. SHA-256 keeps entries small and makes a collision, which
// would hand one user's token to another, infeasible.
func cacheKey(kid string, id auth.Identity) [32]byte {
	var buf [512]byte
	b := buf[:0]
	field := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	field(kid)
	field(id.UserID)
	field(id.Directory)
	field(id.Solution)
	if id.Anonymous {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(id.Groups)))
	for _, g := range id.Groups {
		field(g)
	}
	return sha256Sum(b)
}

// tokenCache keeps minted tokens for reuse, at most cacheSize of them.
type tokenCache struct {
	mu      sync.Mutex // guards entries
	entries map[[32]byte]cachedToken
}

type cachedToken struct {
	token  string
	issued time.Time
}

// get returns the token for key if it was issued less than reuse ago.
func (c *tokenCache) get(key [32]byte, now time.Time, reuse time.Duration) (string, bool) {
	c.mu.Lock()
	t, ok := c.entries[key]
	c.mu.Unlock()
	if !ok || now.Before(t.issued) || now.Sub(t.issued) >= reuse {
		return "", false
	}
	return t.token, true
}

// put stores t; a full cache first drops the tokens no longer reusable,
// then, if still full, a quarter of the rest (map order: arbitrary ones).
func (c *tokenCache) put(key [32]byte, t cachedToken, now time.Time, reuse time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= cacheSize {
		for k, v := range c.entries {
			if now.Before(v.issued) || now.Sub(v.issued) >= reuse {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < cacheSize*3/4 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = t
}
