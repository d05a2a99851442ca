package keystore

// Keys and certificates for tests, shared by all of the package's tests:
// testCA makes a self-signed CA, issue has a CA sign a leaf or, with
// withCA, an intermediate, and testLeaf makes a self-signed leaf. Keys are ECDSA P-256 unless withRSA or
// withEd25519 says otherwise. Everything is generated in memory.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// testCert is a generated key with its certificate.
type testCert struct {
	Key     crypto.Signer
	Cert    *x509.Certificate
	KeyPEM  []byte // PKCS#8, "PRIVATE KEY"
	CertPEM []byte
}

// certOpt adjusts a certificate template before it is signed. The key
// type is taken from the template's PublicKeyAlgorithm (set by withRSA and
// withEd25519); crypto/x509 itself ignores that field when signing.
type certOpt func(*x509.Certificate)

// withDNS sets the certificate's DNS names (by default its CN).
func withDNS(names ...string) certOpt {
	return func(c *x509.Certificate) { c.DNSNames = names }
}

// withIPs adds IP addresses to the certificate's names.
func withIPs(ips ...string) certOpt {
	return func(c *x509.Certificate) {
		for _, ip := range ips {
			c.IPAddresses = append(c.IPAddresses, net.ParseIP(ip))
		}
	}
}

// withValidity sets the validity period (by default an hour ago to a year
// from now).
func withValidity(notBefore, notAfter time.Time) certOpt {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// withClientAuth allows the certificate for TLS client authentication too.
func withClientAuth() certOpt {
	return func(c *x509.Certificate) { c.ExtKeyUsage = append(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) }
}

// withCA makes an issued certificate an intermediate CA.
func withCA() certOpt {
	return func(c *x509.Certificate) {
		c.IsCA = true
		c.BasicConstraintsValid = true
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
		c.ExtKeyUsage = nil
		c.DNSNames = nil
	}
}

// withRSA gives the certificate an RSA-2048 key.
func withRSA() certOpt {
	return func(c *x509.Certificate) { c.PublicKeyAlgorithm = x509.RSA }
}

// withEd25519 gives the certificate an Ed25519 key.
func withEd25519() certOpt {
	return func(c *x509.Certificate) { c.PublicKeyAlgorithm = x509.Ed25519 }
}

// testCA returns a self-signed CA certificate and its key.
func testCA(t testing.TB, cn string, opts ...certOpt) *testCert {
	t.Helper()
	tmpl := testTemplate(t, cn)
	withCA()(&tmpl)
	return newTestCert(t, &tmpl, nil, opts)
}

// issue returns a certificate for cn signed by ca: a TLS server leaf for the
// DNS name cn unless opts say otherwise.
func (ca *testCert) issue(t testing.TB, cn string, opts ...certOpt) *testCert {
	t.Helper()
	tmpl := leafTemplate(t, cn)
	return newTestCert(t, &tmpl, ca, opts)
}

// testLeaf returns a self-signed TLS server certificate for cn that is not
// a CA.
func testLeaf(t testing.TB, cn string, opts ...certOpt) *testCert {
	t.Helper()
	tmpl := leafTemplate(t, cn)
	return newTestCert(t, &tmpl, nil, opts)
}

func leafTemplate(t testing.TB, cn string) x509.Certificate {
	t.Helper()
	tmpl := testTemplate(t, cn)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.DNSNames = []string{cn}
	tmpl.BasicConstraintsValid = true
	return tmpl
}

func testTemplate(t testing.TB, cn string) x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
	}
}

// newTestCert applies opts to tmpl, makes a key and has parent sign the
// certificate (itself if parent is nil).
func newTestCert(t testing.TB, tmpl *x509.Certificate, parent *testCert, opts []certOpt) *testCert {
	t.Helper()
	for _, o := range opts {
		o(tmpl)
	}
	key := newTestKey(t, tmpl.PublicKeyAlgorithm)
	if _, ok := key.(*rsa.PrivateKey); ok && !tmpl.IsCA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		t.Fatalf("create certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{
		Key:     key,
		Cert:    cert,
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
}

// newTestKey makes an RSA-2048, Ed25519 or (otherwise) ECDSA P-256 key.
func newTestKey(t testing.TB, alg x509.PublicKeyAlgorithm) crypto.Signer {
	t.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case x509.RSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case x509.Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}
