package artifact

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/edgefort/edgefort/internal/pemkey"
)

// Artifact signatures, as mender-artifact makes and checks them: over the
// SHA-256 of the raw manifest bytes, either RSA PKCS#1 v1.5 (any key size)
// or ECDSA on P-256 written as raw r‖s (32 bytes each, big-endian). The
// verifier also accepts ECDSA as ASN.1 DER, which PKCS#11 tokens and
// mender-artifact 3.11.3+ produce. manifest.sig holds standard base64 with
// padding and no newline. Ed25519, RSA-PSS and other curves are not part of
// the format.

// ParsePublicKeyPEM parses the first PEM block of data as a verification
// key: "PUBLIC KEY" (PKIX, as openssl -pubout writes) or "RSA PUBLIC KEY"
// (PKCS#1). Only RSA and ECDSA P-256 keys are accepted.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	if err := checkKeyType(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// ParsePrivateKeyPEM parses a signing key with edgefort's one key parser,
// internal/pemkey (PKCS#1, SEC1 or PKCS#8 PEM, or DER). Only RSA and ECDSA P-256 keys are
// accepted: those are the signatures Mender Artifacts carry.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	signer, err := pemkey.Parse(data, nil)
	if err != nil {
		return nil, err
	}
	if err := checkKeyType(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// checkKeyType accepts RSA and ECDSA P-256 public keys.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("ECDSA key on %s: artifacts use P-256 only", k.Curve.Params().Name)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T: artifacts use RSA or ECDSA P-256", pub)
}

// Sign signs manifest with key (RSA or ECDSA P-256; any crypto.Signer, so
// hardware keys work) and returns the manifest.sig content: base64 of the
// PKCS#1 v1.5 signature or of the raw 64-byte r‖s.
func Sign(key crypto.Signer, manifest []byte) ([]byte, error) {
	if err := checkKeyType(key.Public()); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(manifest)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	if _, ok := key.Public().(*ecdsa.PublicKey); ok {
		if sig, err = derToRaw(sig); err != nil {
			return nil, fmt.Errorf("sign manifest: %w", err)
		}
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sig)))
	base64.StdEncoding.Encode(out, sig)
	return out, nil
}

// VerifySignature checks manifest.sig content sig over manifest against
// keys and returns the index of the first key that verifies. The error
// wraps ErrSignature.
func VerifySignature(manifest, sig []byte, keys []crypto.PublicKey) (int, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
	if err != nil {
		return -1, fmt.Errorf("%w: manifest.sig is not base64: %v", ErrSignature, err)
	}
	digest := sha256.Sum256(manifest)
	var errs []error
	for i, k := range keys {
		err := verifyDigest(k, digest[:], raw)
		if err == nil {
			return i, nil
		}
		errs = append(errs, fmt.Errorf("key %d: %w", i+1, err))
	}
	if len(keys) == 0 {
		errs = append(errs, errors.New("no verification key"))
	}
	return -1, fmt.Errorf("%w: %w", ErrSignature, errors.Join(errs...))
}

func verifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return errors.New("ECDSA key not on P-256")
		}
		if len(sig) == 64 {
			r := new(big.Int).SetBytes(sig[:32])
			s := new(big.Int).SetBytes(sig[32:])
			if ecdsa.Verify(k, digest, r, s) {
				return nil
			}
		}
		// A DER signature is 8 to 72 bytes, so a 64-byte one is possible too.
		if ecdsa.VerifyASN1(k, digest, sig) {
			return nil
		}
		return errors.New("ECDSA verification error")
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// derToRaw converts an ASN.1 DER ECDSA P-256 signature to r‖s.
func derToRaw(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 ||
		rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return nil, errors.New("malformed ECDSA signature from signer")
	}
	raw := make([]byte, 64)
	rs.R.FillBytes(raw[:32])
	rs.S.FillBytes(raw[32:])
	return raw, nil
}
