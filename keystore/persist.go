package keystore

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/internal/pemkey"
)

// On disk, under the manager's directory:
//
//	refs.json                      {"refs": {"hub-tls": "hub-2026"}}
//	stores/<name>/store.json       {"kind": "keystore", "created": ..., "builtin": false}
//	stores/<name>/<alias>.pem      private key (keystores) and chain, leaf first; mode 0600
//
// An entry is one file so that replacing an alias can never pair a new key
// with an old certificate after a crash. Every file is written atomically.

const (
	refsFile      = "refs.json"
	storesDir     = "stores"
	storeMetaFile = "store.json"
	entrySuffix   = ".pem"
)

type storeMeta struct {
	Kind    Kind      `json:"kind"`
	Builtin bool      `json:"builtin,omitempty"`
	Created time.Time `json:"created"`
}

type refsDoc struct {
	Refs map[string]string `json:"refs"`
}

func load(dir string) (*snapshot, error) {
	snap := &snapshot{stores: map[string]*Store{}, refs: map[string]string{}}
	if err := os.MkdirAll(filepath.Join(dir, storesDir), 0o700); err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	data, err := atomicfile.ReadFile(filepath.Join(dir, refsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("keystore: %w", err)
	default:
		var doc refsDoc
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("keystore: %s: %w", filepath.Join(dir, refsFile), err)
		}
		if doc.Refs != nil {
			snap.refs = doc.Refs
		}
	}
	dirs, err := os.ReadDir(filepath.Join(dir, storesDir))
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		st, err := loadStore(filepath.Join(dir, storesDir, d.Name()), d.Name())
		if err != nil {
			return nil, err
		}
		snap.stores[st.Name] = st
	}
	return snap, nil
}

func loadStore(path, name string) (*Store, error) {
	data, err := atomicfile.ReadFile(filepath.Join(path, storeMetaFile))
	if err != nil {
		return nil, fmt.Errorf("keystore: store %q: %w", name, err)
	}
	var meta storeMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("keystore: %s: %w", filepath.Join(path, storeMetaFile), err)
	}
	st := &Store{Name: name, Kind: meta.Kind, Builtin: meta.Builtin, Created: meta.Created, Entries: map[string]*Entry{}}
	files, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	for _, f := range files {
		alias, ok := strings.CutSuffix(f.Name(), entrySuffix)
		if !ok || strings.HasPrefix(f.Name(), ".") {
			continue // store.json, or a temporary file left by a crash
		}
		file := filepath.Join(path, f.Name())
		e, err := loadEntry(file, alias, st.Kind)
		if err != nil {
			return nil, fmt.Errorf("keystore: %s: %w", file, err)
		}
		st.Entries[alias] = e
	}
	st.rebuildPool()
	return st, nil
}

func loadEntry(file, alias string, kind Kind) (*Entry, error) {
	data, err := atomicfile.ReadFile(file)
	if err != nil {
		return nil, err
	}
	chain, err := parseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	if kind == KindTruststore {
		return newEntry(alias, nil, chain), nil
	}
	key, err := pemkey.Parse(data, nil)
	if err != nil {
		return nil, err
	}
	if err := checkKeyMatches(key, chain[0]); err != nil {
		return nil, err
	}
	return newEntry(alias, key, chain), nil
}

func (m *Manager) storePath(name string) string {
	return filepath.Join(m.dir, storesDir, name)
}

func (m *Manager) saveStore(st *Store) error {
	if m.dir == "" {
		return nil
	}
	path := m.storePath(st.Name)
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	data, err := json.MarshalIndent(storeMeta{Kind: st.Kind, Builtin: st.Builtin, Created: st.Created}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(path, storeMetaFile), data, 0o600)
}

func (m *Manager) removeStore(name string) error {
	if m.dir == "" {
		return nil
	}
	// Rename first so that a crash half-way through the removal leaves a
	// hidden directory the loader skips, not a store with some keys gone.
	path := m.storePath(name)
	trash := filepath.Join(m.dir, storesDir, fmt.Sprintf(".deleted-%s-%d", name, m.now().UnixNano()))
	if err := os.Rename(path, trash); err != nil {
		return fmt.Errorf("keystore: delete %q: %w", name, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

func (m *Manager) saveEntry(st *Store, e *Entry) error {
	if m.dir == "" {
		return nil
	}
	var buf []byte
	if e.Key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(e.Key)
		if err != nil {
			return fmt.Errorf("keystore: encode key %q: %w", e.Alias, err)
		}
		buf = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	buf = append(buf, EncodeCerts(e.Chain)...)
	return atomicfile.Write(filepath.Join(m.storePath(st.Name), e.Alias+entrySuffix), buf, 0o600)
}

func (m *Manager) removeEntry(st *Store, alias string) error {
	if m.dir == "" {
		return nil
	}
	return atomicfile.Remove(filepath.Join(m.storePath(st.Name), alias+entrySuffix))
}

func (m *Manager) saveRefs(refs map[string]string) error {
	if m.dir == "" {
		return nil
	}
	data, err := json.MarshalIndent(refsDoc{Refs: refs}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(m.dir, refsFile), data, 0o600)
}
