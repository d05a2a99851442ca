package keystore

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Kind says what a store holds.
type Kind string

const (
	// KindKeystore holds private keys with their certificate chains.
	KindKeystore Kind = "keystore"
	// KindTruststore holds certificates to trust.
	KindTruststore Kind = "truststore"
)

// RefScheme prefixes a reference where a store name is expected.
const RefScheme = "ref://"

// BuiltinStore is the keystore holding the generated self-signed default
// certificate, under BuiltinAlias.
const (
	BuiltinStore = "builtin"
	BuiltinAlias = "default"
)

// Sentinel errors callers branch on; each is wrapped with the name at fault.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrWrongKind = errors.New("wrong kind of store")
	ErrInUse     = errors.New("in use")
)

// Compiled on first use, not at every start (cmd/edgefort's TestInitAllocations).
var namePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) })

// checkName validates a store, alias or reference name.
func checkName(what, name string) error {
	if !namePattern().MatchString(name) {
		return fmt.Errorf("%s name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

// Entry is one alias of a store. In a keystore it has a Key and a Chain
// (leaf first); in a truststore only a Chain (one certificate, or a bundle
// imported under one alias).
type Entry struct {
	Alias string
	Key   crypto.Signer       // nil in a truststore
	Chain []*x509.Certificate // leaf first
	// tlsCert is built once when the entry is loaded so that a handshake
	// only picks a pointer.
	tlsCert *tls.Certificate
}

// Leaf is the entry's first certificate.
func (e *Entry) Leaf() *x509.Certificate {
	if len(e.Chain) == 0 {
		return nil
	}
	return e.Chain[0]
}

// TLSCertificate is the entry as crypto/tls wants it; nil in a truststore.
func (e *Entry) TLSCertificate() *tls.Certificate { return e.tlsCert }

func newEntry(alias string, key crypto.Signer, chain []*x509.Certificate) *Entry {
	e := &Entry{Alias: alias, Key: key, Chain: chain}
	if key != nil {
		c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, cert := range chain {
			c.Certificate = append(c.Certificate, cert.Raw)
		}
		e.tlsCert = c
	}
	return e
}

// Store is a keystore or truststore. A Store value is immutable once it is
// in a snapshot: changes build a new one.
type Store struct {
	Name    string
	Kind    Kind
	Builtin bool // the generated self-signed default certificate
	Created time.Time
	Entries map[string]*Entry // by alias
	// pool holds every certificate of a truststore, built once.
	pool *x509.CertPool
}

// Pool is a truststore's certificates as a pool; nil for a keystore.
func (s *Store) Pool() *x509.CertPool { return s.pool }

// Entry returns the alias's entry.
func (s *Store) Entry(alias string) (*Entry, error) {
	e, ok := s.Entries[alias]
	if !ok {
		return nil, fmt.Errorf("%s %q: alias %q: %w", s.Kind, s.Name, alias, ErrNotFound)
	}
	return e, nil
}

// Pick returns the alias's entry, or with alias "" the store's only entry,
// as the settings that name a keystore and an optional key alias mean it.
func (s *Store) Pick(alias string) (*Entry, error) {
	if alias == "" {
		return s.only()
	}
	return s.Entry(alias)
}

// only returns the store's single entry, for settings that name a keystore
// without an alias.
func (s *Store) only() (*Entry, error) {
	if len(s.Entries) == 1 {
		for _, e := range s.Entries {
			return e, nil
		}
	}
	if len(s.Entries) == 0 {
		return nil, fmt.Errorf("%s %q is empty", s.Kind, s.Name)
	}
	return nil, fmt.Errorf("%s %q has %d aliases; set key_alias", s.Kind, s.Name, len(s.Entries))
}

// withEntry returns a copy of s with e added or replaced.
func (s *Store) withEntry(e *Entry) *Store {
	c := *s
	c.Entries = make(map[string]*Entry, len(s.Entries)+1)
	for k, v := range s.Entries {
		c.Entries[k] = v
	}
	c.Entries[e.Alias] = e
	c.rebuildPool()
	return &c
}

// withoutEntry returns a copy of s without alias.
func (s *Store) withoutEntry(alias string) *Store {
	c := *s
	c.Entries = make(map[string]*Entry, len(s.Entries))
	for k, v := range s.Entries {
		if k != alias {
			c.Entries[k] = v
		}
	}
	c.rebuildPool()
	return &c
}

func (s *Store) rebuildPool() {
	if s.Kind != KindTruststore {
		return
	}
	s.pool = x509.NewCertPool()
	for _, e := range s.Entries {
		for _, c := range e.Chain {
			s.pool.AddCert(c)
		}
	}
}

// snapshot is everything the TLS hot path reads: stores and references.
// It is never modified once published; every change builds a new one.
type snapshot struct {
	stores map[string]*Store
	refs   map[string]string // reference name -> store name
}

// resolve finds the store a setting names: a store name or ref://NAME.
// want is the kind the setting needs.
func (s *snapshot) resolve(nameOrRef string, want Kind) (*Store, error) {
	name := nameOrRef
	if ref, ok := strings.CutPrefix(nameOrRef, RefScheme); ok {
		target, ok := s.refs[ref]
		if !ok {
			return nil, fmt.Errorf("reference %q: %w", ref, ErrNotFound)
		}
		name = target
	}
	st, ok := s.stores[name]
	if !ok {
		if name != nameOrRef {
			return nil, fmt.Errorf("%s points at %q, which does not exist", nameOrRef, name)
		}
		return nil, fmt.Errorf("%s %q: %w", want, name, ErrNotFound)
	}
	if st.Kind != want {
		return nil, fmt.Errorf("%s names %s %q where a %s is needed: %w", nameOrRef, st.Kind, name, want, ErrWrongKind)
	}
	return st, nil
}

func (s *snapshot) clone() *snapshot {
	c := &snapshot{stores: make(map[string]*Store, len(s.stores)), refs: make(map[string]string, len(s.refs))}
	for k, v := range s.stores {
		c.stores[k] = v
	}
	for k, v := range s.refs {
		c.refs[k] = v
	}
	return c
}

// EncodeCerts renders certificates as PEM, in order.
func EncodeCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
