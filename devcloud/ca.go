// Package devcloud is a local stand-in for the cloud side of edgefort,
// used by `edgefort-dev` and by tests: a small certificate authority that
// issues the dev node's TLS certificates, a Mender-compatible update
// server (MenderServer) checked against the real Mender client, and the
// control plane (ControlPlane) that implements
// cloudclient/api/controlplane.openapi.yaml. The SigV4-checking broker
// joins it with the event link.
package devcloud

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/keystore"
)

// CA is a development certificate authority. Its key is kept in a file so
// that a developer can issue more certificates with openssl; it is never
// meant for production.
type CA struct {
	Key  crypto.Signer
	Cert *x509.Certificate
}

// Files names where a CA is written.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// NewCA makes a CA valid for ten years.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"edgefort dev"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Key: key, Cert: cert}, nil
}

// Issue makes a leaf certificate for hosts (DNS names or IP addresses),
// valid from now for validity, usable for server and client auth.
func (ca *CA) Issue(cn string, hosts []string, validity time.Duration) (crypto.Signer, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"edgefort dev"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

// WriteFiles writes ca.crt and ca.key (0600) into dir.
func (ca *CA) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("dev CA: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, CACertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o644)
}

// InstallKeystore issues a certificate for hosts and puts it with its key
// as alias in keystore store of m, creating the store: a virtual host's
// TLS for tests that run the agent.
func (ca *CA) InstallKeystore(m *keystore.Manager, store, alias string, hosts []string, validity time.Duration) error {
	key, cert, err := ca.Issue(hosts[0], hosts, validity)
	if err != nil {
		return err
	}
	if err := m.CreateStore(store, keystore.KindKeystore); err != nil {
		return err
	}
	return m.PutEntry(store, alias, key, []*x509.Certificate{cert})
}

// Pool is a certificate pool holding only the CA, for clients that trust
// what it issued and nothing else.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}
