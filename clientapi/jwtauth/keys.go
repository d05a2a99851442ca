package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/go-jose/go-jose/v4"
)

// keyType is what a verification key is, so that a token's alg is checked
// against the key as well as against the allow-list: an RSA key verifies
// RS*/PS* only, a P-256 key ES256 only, and so on.
type keyType int

const (
	keyRSA keyType = iota + 1
	keyP256
	keyP384
	keyP521
	keyEd25519
)

// minRSABits refuses RSA keys too short to trust.
const minRSABits = 2048

// verifyKey is one public key tokens may be signed with. Only
// *rsa.PublicKey, *ecdsa.PublicKey and ed25519.PublicKey are ever stored:
// never a []byte, so no key can become an HMAC secret.
type verifyKey struct {
	kid string // the JWKS kid, or the RFC 7638 thumbprint for key files
	// thumbprint (RFC 7638) identifies the key itself: cache entries
	// remember it, and are dropped when their key leaves the set.
	thumbprint string
	typ        keyType
	// alg, when the JWK names one, is the only algorithm the key serves.
	alg string
	pub crypto.PublicKey
	// from names where the key came from, for errors and logs.
	from string
}

// keySet is the keys in use, immutable once built.
type keySet struct {
	byKID   map[string]*verifyKey
	byThumb map[string]*verifyKey
	all     []*verifyKey
}

func newKeySet(parts ...[]*verifyKey) *keySet {
	s := &keySet{byKID: map[string]*verifyKey{}, byThumb: map[string]*verifyKey{}}
	for _, p := range parts {
		for _, k := range p {
			if _, dup := s.byKID[k.kid]; dup {
				continue // the first key with a kid wins; files come first
			}
			s.byKID[k.kid] = k
			s.byThumb[k.thumbprint] = k
			s.all = append(s.all, k)
		}
	}
	return s
}

// newVerifyKey checks pub and computes its thumbprint.
func newVerifyKey(pub crypto.PublicKey, kid, alg, from string) (*verifyKey, error) {
	k := &verifyKey{pub: pub, kid: kid, alg: alg, from: from}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("rsa key of %d bits, under the minimum of %d", p.N.BitLen(), minRSABits)
		}
		k.typ = keyRSA
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			k.typ = keyP256
		case elliptic.P384():
			k.typ = keyP384
		case elliptic.P521():
			k.typ = keyP521
		default:
			return nil, errors.New("ecdsa key on an unsupported curve")
		}
	case ed25519.PublicKey:
		k.typ = keyEd25519
	default:
		return nil, fmt.Errorf("unsupported key type %T (RSA, ECDSA P-256/384/521 and Ed25519 only)", pub)
	}
	if alg != "" {
		if t, ok := allowedAlgorithms[alg]; !ok || t != k.typ {
			return nil, fmt.Errorf("key alg %q does not fit its key type", alg)
		}
	}
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint: %w", err)
	}
	k.thumbprint = base64.RawURLEncoding.EncodeToString(tp)
	if k.kid == "" {
		k.kid = k.thumbprint
	}
	return k, nil
}

// readKeyFile reads the public keys and certificates of a PEM file; every
// error names the file.
func readKeyFile(path string) ([]*verifyKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	var keys []*verifyKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub crypto.PublicKey
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("key file %s: PEM block %d is %q: only PUBLIC KEY, RSA PUBLIC KEY and CERTIFICATE blocks belong here (never a private key)", path, n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("key file %s: PEM block %d (%s): %w", path, n, block.Type, err)
		}
		k, err := newVerifyKey(pub, "", "", path)
		if err != nil {
			return nil, fmt.Errorf("key file %s: PEM block %d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key file %s: no PEM public key or certificate", path)
	}
	return keys, nil
}

// maxJWKSKeys bounds the keys taken from one JWK Set; identity providers
// publish a handful.
const maxJWKSKeys = 64

// parseJWKS reads a JWK Set. Keys that cannot verify tokens (symmetric
// or private keys, "use" other than "sig", unsupported types, short RSA
// keys, an alg that does not fit the key) are skipped and named
// in skipped, so that one odd key does not discard the set; a set with no
// usable key is an error.
func parseJWKS(data []byte, from string) (keys []*verifyKey, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("decode JWK set: %w", err)
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, nil, fmt.Errorf("JWK set has %d keys, over the limit of %d", len(set.Keys), maxJWKSKeys)
	}
	seen := map[string]bool{}
	for i, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): use %q", i, jwk.KeyID, jwk.Use))
			continue
		}
		if !jwk.IsPublic() {
			// A published private or secret key lets anyone sign.
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): not a public key: whoever read the set could sign tokens with it", i, jwk.KeyID))
			continue
		}
		k, err := newVerifyKey(jwk.Key, jwk.KeyID, jwk.Algorithm, from)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): %v", i, jwk.KeyID, err))
			continue
		}
		if seen[k.kid] {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: kid %q repeated", i, k.kid))
			continue
		}
		seen[k.kid] = true
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("JWK set has no usable signature key")
	}
	return keys, skipped, nil
}
