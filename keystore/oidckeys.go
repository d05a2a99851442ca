package keystore

// OIDC token key pairs: the RSA keys identity providers encrypt ID tokens
// to, with the rotation of Qlik Cloud's "key pairs for signed and encrypted
// ID tokens": a regenerated pair is pending until a verification login
// decrypts with it, and only then replaces the active one; if verification
// fails the old pair stays in use.
//
// On disk, under the directory given to OpenKeyPairs:
//
//	state.json   {"version": 1, "active": KID, "active_created": ..., "pending": KID, "pending_created": ...}
//	<kid>.key    private key, PKCS #8 PEM, mode 0600
//	<kid>.crt    self-signed certificate for the key, PEM, mode 0644
//
// state.json is the truth. A change writes new key files first, then
// state.json, then removes the files of pairs it dropped, every write
// atomic; so a crash leaves at worst files that state.json does not name,
// which the next OpenKeyPairs removes.

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/internal/atomicfile"
)

// The states of an OIDC key pair, and the values of the which argument of
// the KeyPairs methods.
const (
	// KeyPairActive is the pair that decrypts ID tokens.
	KeyPairActive = "active"
	// KeyPairPending is a newly generated pair waiting for a verification
	// login; it decrypts nothing but the verification token.
	KeyPairPending = "pending"
)

const (
	oidcStateFile    = "state.json"
	oidcStateVersion = 1
	oidcKeySuffix    = ".key"
	oidcCertSuffix   = ".crt"
	oidcTempPrefix   = atomicfile.TempPrefix
	oidcCertCN       = "edgefort OIDC token encryption"
	oidcCertYears    = 10
)

// Log keys.
const (
	oidcLogKID   = "kid"
	oidcLogState = "state"
	oidcLogBits  = "bits"
	oidcLogPath  = "path"
)

// oidcKIDPattern matches a key ID: a base64url SHA-256 thumbprint. It keeps
// a hand-edited state.json from naming files outside the directory.
// Compiled on first use, not at every start (cmd/edgefort's TestInitAllocations).
var oidcKIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`) })

// KeyPairInfo describes an OIDC key pair.
type KeyPairInfo struct {
	// ID is the RFC 7638 JWK thumbprint (base64url SHA-256) of the public
	// key; identity providers put it in the JWE header as "kid".
	ID string `json:"kid"`
	// State is KeyPairActive or KeyPairPending.
	State string `json:"state"`
	// Bits is the RSA modulus size: 2048 or 4096.
	Bits    int       `json:"bits"`
	Created time.Time `json:"created"`
	// Fingerprint is the SHA-256 of the public key's DER
	// (SubjectPublicKeyInfo), upper-case hex, colon-separated.
	Fingerprint string `json:"fingerprint"`
}

// KeyPairs holds the OIDC token key pairs: at most one active and one
// pending. It is safe for concurrent use. Reads (Decrypt, exports, List)
// load one atomic pointer; changes (Generate, Verify, Delete) are
// serialised, written to disk, and only then published.
type KeyPairs struct {
	dir string
	log *slog.Logger
	now func() time.Time // the clock; tests replace it

	mu  sync.Mutex                 // serialises changes, from reading pairs to publishing the next set
	set atomic.Pointer[keyPairSet] // the current pairs; replaced only with mu held
}

// keyPairSet is the current pairs. It is never modified once published.
// A pending pair exists only beside an active one.
type keyPairSet struct {
	active, pending *keyPair
}

// keyPair is one loaded pair; immutable.
type keyPair struct {
	kid     string
	key     *rsa.PrivateKey
	created time.Time
	pubDER  []byte // SubjectPublicKeyInfo
	certDER []byte
}

func (p *keyPair) info(state string) KeyPairInfo {
	sum := sha256.Sum256(p.pubDER)
	hexSum := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(hexSum); i += 2 {
		parts = append(parts, hexSum[i:i+2])
	}
	return KeyPairInfo{
		ID:          p.kid,
		State:       state,
		Bits:        p.key.N.BitLen(),
		Created:     p.created,
		Fingerprint: strings.Join(parts, ":"),
	}
}

// OpenKeyPairs loads the key pairs kept under dir (normally
// <state_dir>/oidc-keys), creating dir with mode 0700 if needed. Files left
// by an interrupted change (temporary files, pairs state.json no longer
// names) are removed. A pair state.json names that is missing or does not
// load is an error: the node must not silently lose its decryption key.
func OpenKeyPairs(dir string, log *slog.Logger) (*KeyPairs, error) {
	if log == nil {
		return nil, errors.New("oidc keys: logger required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("oidc keys: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("oidc key directory was open to other users; setting mode 0700", oidcLogPath, dir, "mode", fi.Mode().Perm().String())
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("oidc keys: %w", err)
		}
	}
	k := &KeyPairs{dir: dir, log: log, now: time.Now}
	set, err := k.load()
	if err != nil {
		return nil, err
	}
	k.set.Store(set)
	return k, nil
}

// Generate makes a new RSA key pair of bits (2048 or 4096) with its
// self-signed certificate. Without an active pair the new one becomes
// active at once; otherwise it becomes pending, replacing (and deleting)
// any earlier pending pair, and the active pair keeps serving until Verify
// promotes the new one.
//
// If only removing the replaced pending pair's files fails, the new pair is
// in place, the returned info is valid, and the error says so.
func (k *KeyPairs) Generate(bits int) (KeyPairInfo, error) {
	if bits != 2048 && bits != 4096 {
		return KeyPairInfo{}, fmt.Errorf("oidc keys: generate: RSA key size %d is not offered; use 2048 or 4096", bits)
	}
	// Outside the lock: a 4096-bit key takes a while, and nothing here
	// depends on the current pairs.
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return KeyPairInfo{}, fmt.Errorf("oidc keys: generate: %w", err)
	}
	p, err := newKeyPair(key, k.now().UTC().Truncate(time.Second))
	if err != nil {
		return KeyPairInfo{}, fmt.Errorf("oidc keys: generate: %w", err)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	cur := k.set.Load()
	next := &keyPairSet{active: p}
	state := KeyPairActive
	if cur.active != nil {
		next = &keyPairSet{active: cur.active, pending: p}
		state = KeyPairPending
	}
	if err := k.writePairLocked(p); err != nil {
		return KeyPairInfo{}, fmt.Errorf("oidc keys: generate: %w", err)
	}
	if err := k.writeStateLocked(next); err != nil {
		_ = k.removePairFilesLocked(p) // best effort; the next open removes them anyway
		return KeyPairInfo{}, fmt.Errorf("oidc keys: generate: %w", err)
	}
	k.set.Store(next)
	info := p.info(state)
	k.log.Info("oidc key pair generated", oidcLogKID, p.kid, oidcLogState, state, oidcLogBits, bits)
	if old := cur.pending; old != nil {
		k.log.Info("oidc key pair deleted: replaced by a newer pending one", oidcLogKID, old.kid, oidcLogState, KeyPairPending)
		if err := k.removePairFilesLocked(old); err != nil {
			return info, fmt.Errorf("oidc keys: generate: %s is pending, but the pending pair it replaced left files behind: %w", p.kid, err)
		}
	}
	return info, nil
}

// List returns the pairs: the active one first, then the pending one.
func (k *KeyPairs) List() []KeyPairInfo {
	set := k.set.Load()
	var out []KeyPairInfo
	if set.active != nil {
		out = append(out, set.active.info(KeyPairActive))
	}
	if set.pending != nil {
		out = append(out, set.pending.info(KeyPairPending))
	}
	return out
}

// PublicPEM returns the public key of the active or pending pair as a PKIX
// "PUBLIC KEY" PEM block, for identity providers that take a public key.
func (k *KeyPairs) PublicPEM(which string) ([]byte, error) {
	p, err := k.set.Load().pick(which)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p.pubDER}), nil
}

// CertificatePEM returns the self-signed certificate of the active or
// pending pair as PEM, for identity providers that take a certificate. It
// is made once, when the pair is generated, so every export is the same.
func (k *KeyPairs) CertificatePEM(which string) ([]byte, error) {
	p, err := k.set.Load().pick(which)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.certDER}), nil
}

// JWKS returns the public key of the active or pending pair, or with which
// "" of both (active first, and an empty set if there are none), as a JSON
// Web Key Set with use "enc" and alg "RSA-OAEP-256".
func (k *KeyPairs) JWKS(which string) ([]byte, error) {
	set := k.set.Load()
	var pairs []*keyPair
	if which == "" {
		for _, p := range []*keyPair{set.active, set.pending} {
			if p != nil {
				pairs = append(pairs, p)
			}
		}
	} else {
		p, err := set.pick(which)
		if err != nil {
			return nil, fmt.Errorf("oidc keys: JWKS: %w", err)
		}
		pairs = append(pairs, p)
	}
	doc := struct {
		Keys []publicJWK `json:"keys"`
	}{Keys: make([]publicJWK, 0, len(pairs))}
	for _, p := range pairs {
		doc.Keys = append(doc.Keys, newPublicJWK(&p.key.PublicKey))
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("oidc keys: JWKS: %w", err)
	}
	return append(out, '\n'), nil
}

// Verify completes a rotation with the token of a verification login: an
// ID token the identity provider encrypted to the pending pair. If the
// pending pair decrypts it, the pending pair becomes active and the old
// active pair is deleted, and Verify returns the new active pair. If not,
// the error gives the reason, the active pair stays in use, and the pending
// pair is deleted unless keepPendingOnFailure (to retry after fixing the
// identity provider's settings).
//
// Verify checks only that the identity provider encrypts to the pending
// key; the decrypted ID token's signature is the client API's business.
// If only removing the old pair's files fails, the rotation has happened,
// the returned info is valid, and the error says so.
func (k *KeyPairs) Verify(token []byte, keepPendingOnFailure bool) (KeyPairInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur := k.set.Load()
	p := cur.pending
	if p == nil {
		return KeyPairInfo{}, fmt.Errorf("oidc keys: verify: no pending key pair to verify; generate one first: %w", ErrNotFound)
	}
	if _, err := decryptJWE(token, p.key); err != nil {
		k.log.Warn("oidc key pair verification failed", oidcLogKID, p.kid, "error", err, "keep", keepPendingOnFailure)
		verr := fmt.Errorf("oidc keys: verify pending key pair %s: %w", p.kid, err)
		if keepPendingOnFailure {
			return KeyPairInfo{}, fmt.Errorf("%w (the pending pair is kept; active pair %s stays in use)", verr, cur.active.kid)
		}
		if err := k.replaceLocked(&keyPairSet{active: cur.active}, p); err != nil {
			return KeyPairInfo{}, errors.Join(verr, fmt.Errorf("oidc keys: discard pending key pair %s: %w", p.kid, err))
		}
		k.log.Info("oidc key pair deleted: verification failed", oidcLogKID, p.kid, oidcLogState, KeyPairPending)
		return KeyPairInfo{}, fmt.Errorf("%w (the pending pair is deleted; active pair %s stays in use)", verr, cur.active.kid)
	}
	next := &keyPairSet{active: p}
	if err := k.writeStateLocked(next); err != nil {
		return KeyPairInfo{}, fmt.Errorf("oidc keys: verify: pending key pair %s decrypted the token but could not be made active: %w", p.kid, err)
	}
	k.set.Store(next)
	info := p.info(KeyPairActive)
	k.log.Info("oidc key pair verified and made active", oidcLogKID, p.kid, "replaced", cur.active.kid)
	if err := k.removePairFilesLocked(cur.active); err != nil {
		return info, fmt.Errorf("oidc keys: verify: %s is active, but the replaced pair %s left files behind: %w", p.kid, cur.active.kid, err)
	}
	return info, nil
}

// Delete deletes the active or pending pair, from memory and disk. The
// active pair cannot be deleted while a pending one waits: verify the
// pending pair (it then replaces the active one) or delete it first.
// Remove the public key from the identity provider too, or its logins fail.
func (k *KeyPairs) Delete(which string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur := k.set.Load()
	p, err := cur.pick(which)
	if err != nil {
		return fmt.Errorf("oidc keys: delete: %w", err)
	}
	next := &keyPairSet{active: cur.active}
	if which == KeyPairActive {
		if cur.pending != nil {
			return fmt.Errorf("oidc keys: delete active key pair %s: pending key pair %s is waiting for verification; verify it (it then replaces the active pair) or delete the pending pair first", p.kid, cur.pending.kid)
		}
		next = &keyPairSet{}
	}
	if err := k.replaceLocked(next, p); err != nil {
		return fmt.Errorf("oidc keys: delete %s key pair %s: %w", which, p.kid, err)
	}
	k.log.Info("oidc key pair deleted", oidcLogKID, p.kid, oidcLogState, which)
	if next.active == nil {
		k.log.Warn("no active oidc key pair: encrypted ID tokens cannot be decrypted until one is generated")
	}
	return nil
}

// Decrypt decrypts an encrypted ID token (a compact JWE) with the active
// pair and returns the nested signed JWT, which the caller must verify.
//
// Only the active pair decrypts. A pending pair has not been verified yet,
// and accepting tokens encrypted to it would let logins depend on a key the
// administrator has not confirmed and that a failed verification discards:
// logins would work, then break. Until Verify promotes it, tokens an
// identity provider encrypts to the pending key are refused, with a hint.
func (k *KeyPairs) Decrypt(token []byte) ([]byte, error) {
	set := k.set.Load()
	if set.active == nil {
		return nil, fmt.Errorf("oidc keys: decrypt: no active key pair: %w", ErrNotFound)
	}
	plain, err := decryptJWE(token, set.active.key)
	if err != nil {
		if set.pending != nil && jweKeyID(token) == set.pending.kid {
			return nil, fmt.Errorf("oidc keys: decrypt: %w (that is the pending key pair: verify it to make it active)", err)
		}
		return nil, fmt.Errorf("oidc keys: decrypt: %w", err)
	}
	return plain, nil
}

// DecryptPending decrypts token with the pending pair only, without
// changing any state: a verification login checks the inner token's
// signature with the plaintext before Verify promotes the pair.
func (k *KeyPairs) DecryptPending(token []byte) ([]byte, error) {
	p := k.set.Load().pending
	if p == nil {
		return nil, fmt.Errorf("oidc keys: decrypt with the pending pair: no pending key pair: %w", ErrNotFound)
	}
	plain, err := decryptJWE(token, p.key)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: decrypt with pending pair %s: %w", p.kid, err)
	}
	return plain, nil
}

// pick returns the active or pending pair.
func (s *keyPairSet) pick(which string) (*keyPair, error) {
	var p *keyPair
	switch which {
	case KeyPairActive:
		p = s.active
	case KeyPairPending:
		p = s.pending
	default:
		return nil, fmt.Errorf("key pair %q: use %q or %q", which, KeyPairActive, KeyPairPending)
	}
	if p == nil {
		return nil, fmt.Errorf("no %s key pair: %w", which, ErrNotFound)
	}
	return p, nil
}

// newKeyPair makes the pair's self-signed certificate: CN "edgefort OIDC
// token encryption", valid ten years, for key encipherment only.
func newKeyPair(key *rsa.PrivateKey, created time.Time) (*keyPair, error) {
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: oidcCertCN},
		NotBefore:             created.Add(-time.Hour), // tolerate an identity provider's clock running behind
		NotAfter:              created.AddDate(oidcCertYears, 0, 0),
		KeyUsage:              x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return &keyPair{kid: rsaThumbprint(&key.PublicKey), key: key, created: created, pubDER: pubDER, certDER: certDER}, nil
}

// oidcState is state.json.
type oidcState struct {
	Version        int       `json:"version"`
	Active         string    `json:"active,omitempty"`
	ActiveCreated  time.Time `json:"active_created,omitzero"`
	Pending        string    `json:"pending,omitempty"`
	PendingCreated time.Time `json:"pending_created,omitzero"`
}

func (k *KeyPairs) path(name string) string { return filepath.Join(k.dir, name) }

// load reads state.json and the pairs it names, and removes files left by
// an interrupted change.
func (k *KeyPairs) load() (*keyPairSet, error) {
	st, err := k.readState()
	if err != nil {
		return nil, err
	}
	set := &keyPairSet{}
	if st.Active != "" {
		if set.active, err = k.loadPair(st.Active, st.ActiveCreated); err != nil {
			return nil, err
		}
	}
	if st.Pending != "" {
		if set.pending, err = k.loadPair(st.Pending, st.PendingCreated); err != nil {
			return nil, err
		}
	}
	if err := k.removeLeftovers(st); err != nil {
		return nil, err
	}
	return set, nil
}

func (k *KeyPairs) readState() (oidcState, error) {
	var st oidcState
	file := k.path(oidcStateFile)
	data, err := atomicfile.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("oidc keys: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("oidc keys: %s: %w", file, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return st, fmt.Errorf("oidc keys: %s: trailing data after the JSON object", file)
	}
	switch {
	case st.Version != oidcStateVersion:
		return st, fmt.Errorf("oidc keys: %s: version %d; this edgefort reads version %d", file, st.Version, oidcStateVersion)
	case st.Active != "" && !oidcKIDPattern().MatchString(st.Active):
		return st, fmt.Errorf("oidc keys: %s: active: %q is not a key ID", file, st.Active)
	case st.Pending != "" && !oidcKIDPattern().MatchString(st.Pending):
		return st, fmt.Errorf("oidc keys: %s: pending: %q is not a key ID", file, st.Pending)
	case st.Pending != "" && st.Active == "":
		return st, fmt.Errorf("oidc keys: %s: a pending key pair without an active one", file)
	case st.Pending != "" && st.Pending == st.Active:
		return st, fmt.Errorf("oidc keys: %s: key pair %s is both active and pending", file, st.Active)
	}
	return st, nil
}

// loadPair reads <kid>.key and <kid>.crt and checks that they belong
// together and to kid.
func (k *KeyPairs) loadPair(kid string, created time.Time) (*keyPair, error) {
	keyFile, certFile := k.path(kid+oidcKeySuffix), k.path(kid+oidcCertSuffix)
	der, err := readPEMFile(keyFile, "PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("oidc keys: key pair %s: %w", kid, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: %s: %w", keyFile, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("oidc keys: %s: a %T, not an RSA key", keyFile, parsed)
	}
	if got := rsaThumbprint(&key.PublicKey); got != kid {
		return nil, fmt.Errorf("oidc keys: %s: holds key %s, not %s", keyFile, got, kid)
	}
	certDER, err := readPEMFile(certFile, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("oidc keys: key pair %s: %w", kid, err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: %s: %w", certFile, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("oidc keys: %s: certificate is not for key %s", certFile, kid)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("oidc keys: key pair %s: %w", kid, err)
	}
	return &keyPair{kid: kid, key: key, created: created, pubDER: pubDER, certDER: certDER}, nil
}

func readPEMFile(file, typ string) ([]byte, error) {
	data, err := atomicfile.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("%s: no %q PEM block", file, typ)
	}
	return block.Bytes, nil
}

// removeLeftovers removes temporary files and the files of pairs st does
// not name: what a crash in the middle of a change leaves. Other files are
// left alone.
func (k *KeyPairs) removeLeftovers(st oidcState) error {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return fmt.Errorf("oidc keys: %w", err)
	}
	removed := false
	for _, e := range entries {
		name := e.Name()
		kid := strings.TrimSuffix(strings.TrimSuffix(name, oidcKeySuffix), oidcCertSuffix)
		switch {
		case e.IsDir():
			continue
		case strings.HasPrefix(name, oidcTempPrefix):
			k.log.Info("removing a temporary file left by an interrupted write", oidcLogPath, k.path(name))
		case kid != name && oidcKIDPattern().MatchString(kid) && kid != st.Active && kid != st.Pending:
			k.log.Warn("removing a key pair file left by an interrupted change", oidcLogPath, k.path(name), oidcLogKID, kid)
		default:
			continue
		}
		if err := os.Remove(k.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("oidc keys: %w", err)
		}
		removed = true
	}
	if removed {
		return atomicfile.SyncDir(k.dir)
	}
	return nil
}

func (k *KeyPairs) writePairLocked(p *keyPair) error {
	der, err := x509.MarshalPKCS8PrivateKey(p.key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := atomicfile.Write(k.path(p.kid+oidcKeySuffix), keyPEM, 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.certDER})
	return atomicfile.Write(k.path(p.kid+oidcCertSuffix), certPEM, 0o644)
}

func (k *KeyPairs) writeStateLocked(s *keyPairSet) error {
	st := oidcState{Version: oidcStateVersion}
	if s.active != nil {
		st.Active, st.ActiveCreated = s.active.kid, s.active.created
	}
	if s.pending != nil {
		st.Pending, st.PendingCreated = s.pending.kid, s.pending.created
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(k.path(oidcStateFile), append(data, '\n'), 0o600)
}

// replaceLocked saves and publishes next, then removes the files of drop,
// which next no longer holds. An error saving next changes nothing; an
// error removing files is returned after next is published.
func (k *KeyPairs) replaceLocked(next *keyPairSet, drop *keyPair) error {
	if err := k.writeStateLocked(next); err != nil {
		return err
	}
	k.set.Store(next)
	if err := k.removePairFilesLocked(drop); err != nil {
		return fmt.Errorf("key pair %s is no longer used, but its files remain until the next start: %w", drop.kid, err)
	}
	return nil
}

func (k *KeyPairs) removePairFilesLocked(p *keyPair) error {
	var errs []error
	for _, name := range []string{p.kid + oidcKeySuffix, p.kid + oidcCertSuffix} {
		if err := os.Remove(k.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, atomicfile.SyncDir(k.dir))
	return errors.Join(errs...)
}
