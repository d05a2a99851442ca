package backendjwt

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSAge is the longest a backend may cache the JWK Set: short, so
// that after a rotation it soon knows the new key (verifiers also fetch
// again on an unknown kid).
const maxJWKSAge = 30 * time.Second

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// JWKS serves the public keys that verify the tokens (RFC 7517 JWK Set):
// the key in use and those it replaced less than one TTL ago. GET and HEAD
// only. It resolves the keystore as Mint does, so a rotation shows here
// even before the next token.
func (m *Minter) JWKS() http.Handler { return http.HandlerFunc(m.serveJWKS) }

func (m *Minter) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if _, err := m.key(); err != nil {
		// Keep serving the keys already known: tokens signed with them
		// are still in flight.
		m.warn.Warn("jwks-key", "identity token signing key does not resolve; serving the keys known", logFieldError, err)
	}
	set := m.keySet()
	body, err := json.Marshal(set)
	if err != nil || len(set.Keys) == 0 {
		http.Error(w, "no signing key", http.StatusServiceUnavailable)
		return
	}
	age := min(m.cfg.TTL/2, maxJWKSAge)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(age/time.Second)))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// keySet is the current key, then the retired ones still within their
// TTL, newest first, each kid once.
func (m *Minter) keySet() jose.JSONWebKeySet {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	live := m.previous[:0]
	for _, p := range m.previous {
		if now.Before(p.until) {
			live = append(live, p)
		}
	}
	m.previous = live
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	seen := map[string]bool{}
	add := func(k *signingKey) {
		if k != nil && !seen[k.kid] {
			seen[k.kid] = true
			set.Keys = append(set.Keys, k.jwk)
		}
	}
	add(m.cur.Load())
	for i := len(m.previous) - 1; i >= 0; i-- {
		add(m.previous[i].key)
	}
	return set
}
