package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"time"
)

// builtinValidity is how long the generated default certificate lasts; it is
// regenerated when less than builtinRenewBefore remains.
const (
	builtinValidity    = 365 * 24 * time.Hour
	builtinRenewBefore = 30 * 24 * time.Hour
)

// EnsureBuiltin makes sure the built-in self-signed certificate exists,
// covers hostnames and is not about to expire, generating it (once, then
// persisted) when needed. It reports whether it generated one. Virtual hosts
// that enable TLS without a keystore serve it; it is for getting started,
// and callers log a prominent warning whenever it is used.
func (m *Manager) EnsureBuiltin(hostnames []string) (generated bool, err error) {
	if st, ok := m.current().stores[BuiltinStore]; ok {
		if !st.Builtin {
			return false, fmt.Errorf("a store named %q exists and is not the built-in one; rename it", BuiltinStore)
		}
		if e, ok := st.Entries[BuiltinAlias]; ok && covers(e.Leaf(), hostnames) && m.now().Add(builtinRenewBefore).Before(e.Leaf().NotAfter) {
			return false, nil
		}
	}
	key, cert, err := selfSigned(hostnames, m.now())
	if err != nil {
		return false, fmt.Errorf("built-in certificate: %w", err)
	}
	err = m.change(func(next *snapshot) error {
		st, ok := next.stores[BuiltinStore]
		if !ok {
			st = &Store{Name: BuiltinStore, Kind: KindKeystore, Builtin: true, Created: m.now().UTC(), Entries: map[string]*Entry{}}
			if err := m.saveStore(st); err != nil {
				return err
			}
		}
		e := newEntry(BuiltinAlias, key, []*x509.Certificate{cert})
		if err := m.saveEntry(st, e); err != nil {
			return err
		}
		next.stores[BuiltinStore] = st.withEntry(e)
		return nil
	})
	return err == nil, err
}

// covers reports whether cert names every host.
func covers(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func selfSigned(hostnames []string, now time.Time) (crypto.Signer, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "edgefort built-in certificate", Organization: []string{"edgefort (self-signed)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(builtinValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range slices.Compact(slices.Sorted(slices.Values(hostnames))) {
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}
