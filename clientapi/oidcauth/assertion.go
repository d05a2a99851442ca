package oidcauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/edgefort/edgefort/keystore"
)

// assertionTTL bounds the client assertion: it is used at once.
const assertionTTL = time.Minute

// clientAssertion signs the private_key_jwt client assertion (RFC 7523)
// with the configured keystore key, read at each use so that a rotated
// keystore entry takes effect without a reload. Its audience is the
// issuer identifier, which providers accept for every endpoint.
func (s *Solution) clientAssertion() (string, error) {
	st, err := s.deps.Keystores.Resolve(s.cfg.PrivateKeyJWT.Keystore, keystore.KindKeystore)
	if err != nil {
		return "", err
	}
	e, err := st.Pick(s.cfg.PrivateKeyJWT.KeyAlias)
	if err != nil {
		return "", err
	}
	if e.Key == nil {
		return "", fmt.Errorf("alias %q has no private key", e.Alias)
	}
	var alg jose.SignatureAlgorithm
	switch pub := e.Key.Public().(type) {
	case *rsa.PublicKey:
		alg = jose.RS256
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return "", fmt.Errorf("alias %q: ECDSA on %s; only P-256 (ES256) signs", e.Alias, pub.Curve.Params().Name)
		}
		alg = jose.ES256
	default:
		return "", fmt.Errorf("alias %q: key of type %T; want RSA or ECDSA P-256", e.Alias, pub)
	}
	tp, err := (&jose.JSONWebKey{Key: e.Key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: e.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", base64.RawURLEncoding.EncodeToString(tp)))
	if err != nil {
		return "", fmt.Errorf("alias %q: %w", e.Alias, err)
	}
	now := s.now()
	claims, err := json.Marshal(map[string]any{
		"iss": s.cfg.ClientID, "sub": s.cfg.ClientID, "aud": s.cfg.Issuer, "jti": random(),
		"iat": now.Unix(), "exp": now.Add(assertionTTL).Unix(),
	})
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		return "", fmt.Errorf("alias %q: sign: %w", e.Alias, err)
	}
	return jws.CompactSerialize()
}
