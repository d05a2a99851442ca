package keystore

// JWE decryption of OIDC ID tokens, and the JWK form of the OIDC key pairs'
// public keys.

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// The algorithms an identity provider may encrypt an ID token with. Anything
// else is refused before any key is touched: RSA1_5 (PKCS #1 v1.5 padding,
// open to Bleichenbacher-style oracles), dir and the AES key wraps (they
// need a shared secret, not our RSA key), ECDH-ES and PBES2 (not RSA keys)
// and "none" (not encryption at all).
var (
	jweKeyAlgorithms = []jose.KeyAlgorithm{
		jose.RSA_OAEP,
		jose.RSA_OAEP_256,
	}
	jweContentEncryptions = []jose.ContentEncryption{
		jose.A128CBC_HS256,
		jose.A256CBC_HS512,
		jose.A128GCM,
		jose.A256GCM,
	}
)

// jwkAlgorithm is the key algorithm the JWKS export advertises, so that an
// identity provider that reads it picks the stronger of the two accepted.
const jwkAlgorithm = string(jose.RSA_OAEP_256)

// jweHeader is the part of a JWE protected header checked before go-jose
// parses the token, so that a refusal names what was refused.
type jweHeader struct {
	Alg string `json:"alg"`
	Enc string `json:"enc"`
	KID string `json:"kid"`
}

// decryptJWE decrypts a JWE in compact serialization (ID tokens are always
// compact) that was encrypted to key, and returns the plaintext as is. For
// an ID token that is a nested signed JWT: its signature and claims are
// verified by the client API, not here.
//
// The token is refused, with the reason, when its key algorithm or content
// encryption is not in the allow-list above, when it is not compact, or
// when its header names another key ID than key's (RFC 7638 thumbprint).
func decryptJWE(token []byte, key *rsa.PrivateKey) ([]byte, error) {
	s := strings.TrimSpace(string(token))
	hdr, err := parseJWEHeader(s)
	if err != nil {
		return nil, err
	}
	if hdr.Alg == "" {
		return nil, errors.New(`JWE header has no "alg"`)
	}
	if !slices.Contains(jweKeyAlgorithms, jose.KeyAlgorithm(hdr.Alg)) {
		return nil, fmt.Errorf("JWE key algorithm %q is not accepted; use %s", hdr.Alg, joinAlgs(jweKeyAlgorithms))
	}
	if hdr.Enc == "" {
		return nil, errors.New(`JWE header has no "enc"`)
	}
	if !slices.Contains(jweContentEncryptions, jose.ContentEncryption(hdr.Enc)) {
		return nil, fmt.Errorf("JWE content encryption %q is not accepted; use %s", hdr.Enc, joinAlgs(jweContentEncryptions))
	}
	ours := rsaThumbprint(&key.PublicKey)
	if hdr.KID != "" && hdr.KID != ours {
		return nil, fmt.Errorf("token is encrypted to key %s, not %s", hdr.KID, ours)
	}
	// go-jose checks the same allow-lists again, so nothing outside them
	// can reach a decrypter even if the checks above were wrong.
	jwe, err := jose.ParseEncryptedCompact(s, jweKeyAlgorithms, jweContentEncryptions)
	if err != nil {
		return nil, fmt.Errorf("parse JWE: %w", err)
	}
	plain, err := jwe.Decrypt(key)
	if errors.Is(err, jose.ErrCryptoFailure) {
		return nil, fmt.Errorf("decrypt JWE: the token was not encrypted to key %s, or it was altered", ours)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt JWE: %w", err)
	}
	return plain, nil
}

// parseJWEHeader checks that s has the five parts of a compact JWE and
// decodes its protected header.
func parseJWEHeader(s string) (jweHeader, error) {
	var hdr jweHeader
	switch n := strings.Count(s, ".") + 1; {
	case s == "":
		return hdr, errors.New("empty token")
	case strings.HasPrefix(s, "{"):
		return hdr, errors.New("JWE JSON serialization is not accepted; ID tokens use the compact one")
	case n == 3:
		return hdr, errors.New("token has 3 parts: it is a signed JWT (JWS), not an encrypted one (JWE)")
	case n != 5:
		return hdr, fmt.Errorf("token has %d dot-separated parts; a compact JWE has 5", n)
	}
	first, _, _ := strings.Cut(s, ".")
	raw, err := base64.RawURLEncoding.DecodeString(first)
	if err != nil {
		return hdr, fmt.Errorf("JWE header: %w", err)
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return hdr, fmt.Errorf("JWE header: %w", err)
	}
	return hdr, nil
}

// jweKeyID returns the kid of a compact JWE's header, or "" if it has none
// or cannot be read.
func jweKeyID(token []byte) string {
	hdr, err := parseJWEHeader(strings.TrimSpace(string(token)))
	if err != nil {
		return ""
	}
	return hdr.KID
}

func joinAlgs[T ~string](algs []T) string {
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// rsaThumbprint is the RFC 7638 JWK thumbprint of pub with SHA-256,
// base64url without padding: the key ID of an OIDC key pair.
func rsaThumbprint(pub *rsa.PublicKey) string {
	// RFC 7638 section 3.2: the required members in lexicographic order, no
	// whitespace; base64url strings need no JSON escaping.
	in := `{"e":"` + b64(big.NewInt(int64(pub.E)).Bytes()) + `","kty":"RSA","n":"` + b64(pub.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(in))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// publicJWK is an OIDC key pair's public key as an identity provider reads
// it from a JWKS (RFC 7517, RFC 7518 section 6.3.1).
type publicJWK struct {
	Kty string `json:"kty"`
	N   string `json:"n"`
	E   string `json:"e"`
	KID string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

func newPublicJWK(pub *rsa.PublicKey) publicJWK {
	return publicJWK{
		Kty: "RSA",
		N:   b64(pub.N.Bytes()),
		E:   b64(big.NewInt(int64(pub.E)).Bytes()),
		KID: rsaThumbprint(pub),
		Use: "enc",
		Alg: jwkAlgorithm,
	}
}
