package keystore

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Manager.
type Options struct {
	// Dir holds the stores and references on disk (normally
	// <state_dir>/keystores). Empty keeps everything in memory, for tests.
	Dir string
	// Logger receives warnings (expiring certificates, validation errors
	// ignored on purpose). Required.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Manager owns the stores and references and hands out TLS configurations
// that follow them. Reads (every handshake) load one atomic pointer;
// changes are serialised, written to disk first, then published.
type Manager struct {
	dir string
	log *slog.Logger
	now func() time.Time

	snap atomic.Pointer[snapshot]

	mu sync.Mutex // serialises changes: held from reading the snapshot to publishing the next
}

// Open loads the stores and references under opts.Dir, creating it if
// needed.
func Open(opts Options) (*Manager, error) {
	m := &Manager{dir: opts.Dir, log: opts.Logger, now: opts.Now}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		return nil, fmt.Errorf("keystore: logger required")
	}
	snap := &snapshot{stores: map[string]*Store{}, refs: map[string]string{}}
	if m.dir != "" {
		var err error
		if snap, err = load(m.dir); err != nil {
			return nil, err
		}
	}
	m.snap.Store(snap)
	return m, nil
}

func (m *Manager) current() *snapshot { return m.snap.Load() }

// change runs fn on a copy of the current snapshot under the writer lock
// and publishes the copy if fn succeeds. fn persists what it changed before
// returning, so what is published is already durable.
func (m *Manager) change(fn func(next *snapshot) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.current().clone()
	if err := fn(next); err != nil {
		return err
	}
	m.snap.Store(next)
	return nil
}

// Resolve returns the store a setting names (NAME or ref://NAME), which must
// be of kind want.
func (m *Manager) Resolve(nameOrRef string, want Kind) (*Store, error) {
	return m.current().resolve(nameOrRef, want)
}

// CreateStore makes an empty keystore or truststore.
func (m *Manager) CreateStore(name string, kind Kind) error {
	if err := checkName(string(kind), name); err != nil {
		return err
	}
	if kind != KindKeystore && kind != KindTruststore {
		return fmt.Errorf("store kind %q: want keystore or truststore", kind)
	}
	return m.change(func(next *snapshot) error {
		if old, ok := next.stores[name]; ok {
			return fmt.Errorf("%s %q: %w", old.Kind, name, ErrExists)
		}
		st := &Store{Name: name, Kind: kind, Created: m.now().UTC(), Entries: map[string]*Entry{}}
		st.rebuildPool()
		if err := m.saveStore(st); err != nil {
			return err
		}
		next.stores[name] = st
		return nil
	})
}

// DeleteStore removes a store. A store that a reference points at is
// refused: repoint or delete the reference first.
func (m *Manager) DeleteStore(name string) error {
	return m.change(func(next *snapshot) error {
		st, ok := next.stores[name]
		if !ok {
			return fmt.Errorf("store %q: %w", name, ErrNotFound)
		}
		if refs := next.refsTo(name); len(refs) > 0 {
			return fmt.Errorf("%s %q: %w by reference %s; repoint or delete it first", st.Kind, name, ErrInUse, quoteJoin(refs))
		}
		if err := m.removeStore(name); err != nil {
			return err
		}
		delete(next.stores, name)
		return nil
	})
}

// PutEntry adds or replaces alias in a keystore with a key and its chain
// (leaf first). Replacing an alias in a store that TLS settings use takes
// effect at their next handshake.
func (m *Manager) PutEntry(store, alias string, key crypto.Signer, chain []*x509.Certificate) error {
	if err := checkName("alias", alias); err != nil {
		return err
	}
	if key == nil || len(chain) == 0 {
		return fmt.Errorf("alias %q: a keystore entry needs a private key and a certificate", alias)
	}
	if err := checkKeyMatches(key, chain[0]); err != nil {
		return fmt.Errorf("alias %q: %w", alias, err)
	}
	return m.putEntry(store, KindKeystore, newEntry(alias, key, chain))
}

// PutTrusted adds or replaces alias in a truststore with certificates.
func (m *Manager) PutTrusted(store, alias string, certs []*x509.Certificate) error {
	if err := checkName("alias", alias); err != nil {
		return err
	}
	if len(certs) == 0 {
		return fmt.Errorf("alias %q: no certificates", alias)
	}
	return m.putEntry(store, KindTruststore, newEntry(alias, nil, certs))
}

func (m *Manager) putEntry(store string, kind Kind, e *Entry) error {
	return m.change(func(next *snapshot) error {
		st, ok := next.stores[store]
		if !ok {
			return fmt.Errorf("%s %q: %w (create it first)", kind, store, ErrNotFound)
		}
		if st.Kind != kind {
			return fmt.Errorf("%q is a %s, not a %s: %w", store, st.Kind, kind, ErrWrongKind)
		}
		if err := m.saveEntry(st, e); err != nil {
			return err
		}
		next.stores[store] = st.withEntry(e)
		return nil
	})
}

// DeleteEntry removes alias from a store.
func (m *Manager) DeleteEntry(store, alias string) error {
	return m.change(func(next *snapshot) error {
		st, ok := next.stores[store]
		if !ok {
			return fmt.Errorf("store %q: %w", store, ErrNotFound)
		}
		if _, err := st.Entry(alias); err != nil {
			return err
		}
		if err := m.removeEntry(st, alias); err != nil {
			return err
		}
		next.stores[store] = st.withoutEntry(alias)
		return nil
	})
}

// SetRef creates reference ref or repoints it at store. A reference keeps
// its kind: one that points at a keystore can only be repointed at another
// keystore, since the settings that name it expect one.
func (m *Manager) SetRef(ref, store string) error {
	if err := checkName("reference", ref); err != nil {
		return err
	}
	return m.change(func(next *snapshot) error {
		st, ok := next.stores[store]
		if !ok {
			return fmt.Errorf("reference %q: store %q: %w", ref, store, ErrNotFound)
		}
		if old, ok := next.refs[ref]; ok {
			if oldStore, ok := next.stores[old]; ok && oldStore.Kind != st.Kind {
				return fmt.Errorf("reference %q points at %s %q; it cannot point at %s %q: %w", ref, oldStore.Kind, old, st.Kind, store, ErrWrongKind)
			}
		}
		next.refs[ref] = store
		return m.saveRefs(next.refs)
	})
}

// DeleteRef removes a reference.
func (m *Manager) DeleteRef(ref string) error {
	return m.change(func(next *snapshot) error {
		if _, ok := next.refs[ref]; !ok {
			return fmt.Errorf("reference %q: %w", ref, ErrNotFound)
		}
		delete(next.refs, ref)
		return m.saveRefs(next.refs)
	})
}

// Refs returns every reference and the store it points at.
func (m *Manager) Refs() map[string]string {
	refs := m.current().refs
	out := make(map[string]string, len(refs))
	for k, v := range refs {
		out[k] = v
	}
	return out
}

// StoreInfo describes a store for listings.
type StoreInfo struct {
	Name         string      `json:"name"`
	Kind         Kind        `json:"kind"`
	Builtin      bool        `json:"builtin,omitempty"`
	Created      time.Time   `json:"created"`
	ReferencedBy []string    `json:"referenced_by,omitempty"`
	Entries      []EntryInfo `json:"entries"`
}

// EntryInfo describes one alias: its leaf certificate and chain length.
type EntryInfo struct {
	Alias        string    `json:"alias"`
	HasKey       bool      `json:"has_key"`
	Subject      string    `json:"subject"`
	Issuer       string    `json:"issuer"`
	DNSNames     []string  `json:"dns_names,omitempty"`
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
	Fingerprint  string    `json:"sha256_fingerprint"`
	Certificates int       `json:"certificates"`
	Expired      bool      `json:"expired,omitempty"`
	Warning      string    `json:"warning,omitempty"`
}

// List describes every store, by name.
func (m *Manager) List() []StoreInfo {
	snap := m.current()
	now := m.now()
	var out []StoreInfo
	for _, st := range snap.stores {
		info := StoreInfo{Name: st.Name, Kind: st.Kind, Builtin: st.Builtin, Created: st.Created, ReferencedBy: snap.refsTo(st.Name)}
		for _, e := range st.Entries {
			info.Entries = append(info.Entries, entryInfo(e, now))
		}
		sort.Slice(info.Entries, func(i, j int) bool { return info.Entries[i].Alias < info.Entries[j].Alias })
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func entryInfo(e *Entry, now time.Time) EntryInfo {
	leaf := e.Leaf()
	return EntryInfo{
		Alias:        e.Alias,
		HasKey:       e.Key != nil,
		Subject:      leaf.Subject.String(),
		Issuer:       leaf.Issuer.String(),
		DNSNames:     leaf.DNSNames,
		NotBefore:    leaf.NotBefore,
		NotAfter:     leaf.NotAfter,
		Fingerprint:  fingerprint(leaf),
		Certificates: len(e.Chain),
		Expired:      now.After(leaf.NotAfter),
		Warning:      certExpiry(leaf, now),
	}
}

// refsTo lists the references that point at store, sorted.
func (s *snapshot) refsTo(store string) []string {
	var refs []string
	for r, target := range s.refs {
		if target == store {
			refs = append(refs, r)
		}
	}
	slices.Sort(refs)
	return refs
}

func quoteJoin(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", n)
	}
	return out
}
