package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/edgefort/edgefort/internal/pemkey"
)

// Errors a caller may act on, for instance by asking for a passphrase again.
var (
	errWrongPKCS12Password = errors.New("pkcs12: wrong password")
	errNoCert              = errors.New("no PEM certificate found")
)

const (
	// expiryWarning is how long before it expires a certificate is reported.
	expiryWarning = 30 * 24 * time.Hour
)

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
)

// parseCertsPEM reads every CERTIFICATE block of data, or data as one DER
// certificate. Other blocks, private keys included, are skipped.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var (
		certs  []*x509.Certificate
		others []string
		rest   = data
		n      int
	)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != pemCertificate {
			if !slices.Contains(others, b.Type) {
				others = append(others, b.Type)
			}
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) > 0:
		return certs, nil
	case len(others) > 0:
		return nil, fmt.Errorf("%w; found only %s", errNoCert, strings.Join(others, ", "))
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, errNoCert
	}
	return []*x509.Certificate{c}, nil
}

// parsePKCS12 decodes a PKCS#12 (.p12, .pfx) bundle: its private key and
// its certificates, ordered leaf first with orderChain's rules. The leaf is
// the certificate that matches the key.
func parsePKCS12(data []byte, password string) (crypto.Signer, []*x509.Certificate, error) {
	k, first, cas, err := pkcs12.DecodeChain(data, password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		if password == "" {
			return nil, nil, fmt.Errorf("%w (none given)", errWrongPKCS12Password)
		}
		return nil, nil, errWrongPKCS12Password
	case err != nil && err.Error() == "pkcs12: private key missing":
		return nil, nil, errors.New("pkcs12: the bundle holds no private key (certificates alone belong in a truststore)")
	case err != nil:
		return nil, nil, err
	}
	key, err := pemkey.CheckSigner(k)
	if err != nil {
		return nil, nil, fmt.Errorf("pkcs12: %w", err)
	}
	certs := dedupCerts(append([]*x509.Certificate{first}, cas...))
	leaf := first
	for _, c := range certs {
		if checkKeyMatches(key, c) == nil {
			leaf = c
			break
		}
	}
	if err := checkKeyMatches(key, leaf); err != nil {
		return nil, nil, fmt.Errorf("pkcs12: %w", err)
	}
	chain, err := chainFrom(leaf, certs)
	if err != nil {
		return nil, nil, fmt.Errorf("pkcs12: %w", err)
	}
	return key, chain, nil
}

// checkKeyMatches reports an error unless key is the private half of cert's
// public key.
func checkKeyMatches(key crypto.Signer, cert *x509.Certificate) error {
	if key == nil || cert == nil {
		return errors.New("private key does not match the certificate: missing key or certificate")
	}
	pub := key.Public()
	if p, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); ok && p.Equal(cert.PublicKey) {
		return nil
	}
	detail := keyTypeName(pub)
	if ct := keyTypeName(cert.PublicKey); ct != detail {
		detail += ", certificate key type " + ct
	}
	return fmt.Errorf("private key does not match the certificate (certificate %s, key type %s)", certName(cert), detail)
}

// keyTypeName is a short name of a public key's algorithm and size.
func keyTypeName(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", p.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + p.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// orderChain puts certs leaf first, each followed by its issuer. The leaf
// is the certificate that signs no other in the set; if several qualify,
// the one with the longest chain, then a non-CA one, then the first given.
// Duplicates are dropped; a certificate off the leaf's chain is an error.
// Where two certificates could issue the same one (a cross-signed CA), the
// one that is not self-signed is taken, so the chain reaches further.
func orderChain(certs []*x509.Certificate) ([]*x509.Certificate, error) {
	certs = dedupCerts(certs)
	switch len(certs) {
	case 0:
		return nil, errNoCert
	case 1:
		return certs, nil
	}
	var leaf *x509.Certificate
	var leafLen int
	for _, c := range certs {
		if slices.ContainsFunc(certs, func(child *x509.Certificate) bool { return issuedBy(child, c) }) {
			continue
		}
		n := len(walkIssuers(c, certs))
		if leaf == nil || n > leafLen || n == leafLen && leaf.IsCA && !c.IsCA {
			leaf, leafLen = c, n
		}
	}
	if leaf == nil {
		return nil, errors.New("no leaf certificate: each certificate signs another")
	}
	return chainFrom(leaf, certs)
}

// chainFrom is leaf followed by its issuers among certs; every certificate
// of certs must be on it.
func chainFrom(leaf *x509.Certificate, certs []*x509.Certificate) ([]*x509.Certificate, error) {
	chain := walkIssuers(leaf, certs)
	for _, c := range certs {
		if !slices.Contains(chain, c) {
			return nil, fmt.Errorf("certificate %s is not part of the chain of %s", certName(c), certName(leaf))
		}
	}
	return chain, nil
}

// walkIssuers follows issuers from leaf as far as certs go.
func walkIssuers(leaf *x509.Certificate, certs []*x509.Certificate) []*x509.Certificate {
	chain := []*x509.Certificate{leaf}
	for cur := leaf; ; {
		var next *x509.Certificate
		for _, p := range certs {
			if slices.Contains(chain, p) || !issuedBy(cur, p) {
				continue
			}
			if next == nil || isSelfIssued(next) && !isSelfIssued(p) {
				next = p
			}
		}
		if next == nil {
			return chain
		}
		chain = append(chain, next)
		cur = next
	}
}

// issuedBy reports whether parent, a different certificate, signed child.
func issuedBy(child, parent *x509.Certificate) bool {
	return child != parent && bytes.Equal(child.RawIssuer, parent.RawSubject) && child.CheckSignatureFrom(parent) == nil
}

func isSelfIssued(c *x509.Certificate) bool { return bytes.Equal(c.RawIssuer, c.RawSubject) }

// dedupCerts drops repeated certificates, keeping the first of each.
func dedupCerts(certs []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(certs))
	for _, c := range certs {
		if !slices.ContainsFunc(out, c.Equal) {
			out = append(out, c)
		}
	}
	return out
}

// certExpiry returns a warning if cert is not yet valid, expired, or
// expires within 30 days of now; "" otherwise.
func certExpiry(cert *x509.Certificate, now time.Time) string {
	const layout = time.RFC3339
	name := certName(cert)
	switch {
	case now.Before(cert.NotBefore):
		return fmt.Sprintf("certificate %s is not valid before %s (in %s)",
			name, cert.NotBefore.UTC().Format(layout), span(cert.NotBefore.Sub(now)))
	case now.After(cert.NotAfter):
		return fmt.Sprintf("certificate %s expired %s ago (%s)",
			name, span(now.Sub(cert.NotAfter)), cert.NotAfter.UTC().Format(layout))
	case cert.NotAfter.Sub(now) <= expiryWarning:
		return fmt.Sprintf("certificate %s expires in %s (%s)",
			name, span(cert.NotAfter.Sub(now)), cert.NotAfter.UTC().Format(layout))
	}
	return ""
}

// span is d in whole days, hours or minutes, rounded down.
func span(d time.Duration) string {
	unit := func(n int64, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	switch {
	case d >= 24*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	}
	return "less than a minute"
}

// describeCert is a one-line identification of cert for messages and
// listings: "CN=edge-1, serial 0A1B, SHA-256 fingerprint AB:CD:…".
func describeCert(cert *x509.Certificate) string {
	serial := "unknown"
	if sn := cert.SerialNumber; sn != nil {
		serial = fmt.Sprintf("%X", sn)
		if sn.Sign() >= 0 && len(serial)%2 == 1 {
			serial = "0" + serial // as openssl x509 -serial prints it
		}
	}
	return fmt.Sprintf("%s, serial %s, SHA-256 fingerprint %s", certName(cert), serial, fingerprint(cert))
}

// fingerprint is the SHA-256 of cert's DER in upper-case hex pairs joined
// by colons, as openssl x509 -fingerprint -sha256 prints it.
func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return strings.ReplaceAll(fmt.Sprintf("% X", sum[:]), " ", ":")
}

// certName names cert in messages: "CN=…", or its whole subject if it has
// no common name.
func certName(cert *x509.Certificate) string {
	switch {
	case cert.Subject.CommonName != "":
		return "CN=" + cert.Subject.CommonName
	case len(cert.RawSubject) > 0 && cert.Subject.String() != "":
		return cert.Subject.String()
	}
	return "with empty subject"
}
