package keystore

import (
	"crypto/x509"
	"fmt"

	"github.com/edgefort/edgefort/internal/pemkey"
)

// ImportKeyPair parses a PEM (or DER) private key and certificate chain and
// stores them under alias in a keystore. The chain is put leaf first; the
// key must match the leaf. passphrase decrypts an encrypted key. Warnings
// (a certificate expired or expiring soon) do not stop the import: an
// operator may be staging a replacement, and the expiry watcher keeps
// reminding.
func (m *Manager) ImportKeyPair(store, alias string, keyPEM, certPEM, passphrase []byte) (warnings []string, err error) {
	key, err := pemkey.Parse(keyPEM, passphrase)
	if err != nil {
		return nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
	}
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
	}
	chain, err := orderChain(certs)
	if err != nil {
		return nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
	}
	if err := m.PutEntry(store, alias, key, chain); err != nil {
		return nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
	}
	return m.expiryWarnings(chain[:1]), nil
}

// ImportPKCS12 stores the key and chain of a PKCS#12 bundle under alias.
func (m *Manager) ImportPKCS12(store, alias string, data []byte, password string) (warnings []string, err error) {
	key, chain, err := parsePKCS12(data, password)
	if err != nil {
		return nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
	}
	if err := m.PutEntry(store, alias, key, chain); err != nil {
		return nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
	}
	return m.expiryWarnings(chain[:1]), nil
}

// ImportTrusted adds PEM certificates to a truststore: all under alias as
// one bundle, or, with split, one alias per certificate named alias-1,
// alias-2, … in file order.
func (m *Manager) ImportTrusted(store, alias string, certPEM []byte, split bool) (aliases, warnings []string, err error) {
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
	}
	if !split {
		if err := m.PutTrusted(store, alias, certs); err != nil {
			return nil, nil, fmt.Errorf("import %s/%s: %w", store, alias, err)
		}
		return []string{alias}, m.expiryWarnings(certs), nil
	}
	for i := range certs {
		a := fmt.Sprintf("%s-%d", alias, i+1)
		if err := m.PutTrusted(store, a, certs[i:i+1]); err != nil {
			return aliases, nil, fmt.Errorf("import %s/%s: %w", store, a, err)
		}
		aliases = append(aliases, a)
	}
	return aliases, m.expiryWarnings(certs), nil
}

func (m *Manager) expiryWarnings(certs []*x509.Certificate) []string {
	now := m.now()
	var out []string
	for _, c := range certs {
		if w := certExpiry(c, now); w != "" {
			out = append(out, w)
		}
	}
	return out
}
