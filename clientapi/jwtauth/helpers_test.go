package jwtauth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
	"github.com/edgefort/edgefort/keystore"
)

const (
	testIssuer   = "https://id.example.test"
	testAudience = "edgefort-node"
)

// testKeys are generated once per test binary: RSA key generation is slow
// under -race.
var testKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// clock is a settable clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// writeKeyFile writes key's public half as a PEM PUBLIC KEY file.
func writeKeyFile(t testing.TB, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// thumbprint is the RFC 7638 thumbprint of key, the kid of a key file.
// (jwttest's, from go-jose, so that ours is checked against it.)
func thumbprint(t testing.TB, key *rsa.PrivateKey) string {
	t.Helper()
	return jwttest.Thumbprint(t, &key.PublicKey)
}

func baseConfig() Config {
	return Config{Issuer: testIssuer, Audience: []string{"other", testAudience}}
}

// newTestSolution builds a Solution on clk with a fresh keystore manager.
func newTestSolution(t testing.TB, cfg Config, clk *clock, stores *keystore.Manager) *Solution {
	t.Helper()
	if stores == nil {
		stores = newStores(t)
	}
	s, err := New(cfg, Deps{Keystores: stores, Logger: slog.New(slog.DiscardHandler), Now: clk.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func newStores(t testing.TB) *keystore.Manager {
	t.Helper()
	m, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// setup is the jwttest setup for a solution trusting key under kid.
func setup(key *rsa.PrivateKey, kid string, clk *clock) jwttest.Setup {
	return jwttest.Setup{Key: key, KID: kid, Issuer: testIssuer, Audience: testAudience, Now: clk.Now()}
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://node.test/app", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// mustAuthenticate fails the test unless r authenticates.
func mustAuthenticate(t testing.TB, s *Solution, r *http.Request) auth.Identity {
	t.Helper()
	res := s.Authenticate(r)
	if res.Outcome != auth.Authenticated {
		t.Fatalf("Authenticate = %v %s (%v), want authenticated", res.Outcome, res.Reason, res.Err)
	}
	return res.Identity
}

// jwksServer is an identity provider's JWK Set endpoint on a real TLS
// socket, whose answer the test changes.
type jwksServer struct {
	srv      *httptest.Server
	requests atomic.Int64

	mu   sync.Mutex // guards body and status
	body []byte
	code int
}

func newJWKSServer(t testing.TB) *jwksServer {
	t.Helper()
	j := &jwksServer{code: http.StatusOK}
	j.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.requests.Add(1)
		j.mu.Lock()
		body, code := j.body, j.code
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(code)
		w.Write(body)
	}))
	t.Cleanup(j.srv.Close)
	return j
}

// setKeys serves the public halves of keys with kids.
func (j *jwksServer) setKeys(t testing.TB, keys map[string]*rsa.PrivateKey) {
	t.Helper()
	var set jose.JSONWebKeySet
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	j.set(http.StatusOK, b)
}

func (j *jwksServer) set(code int, body []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.code, j.body = code, body
}

// stores returns a keystore manager whose truststore "idp" trusts the
// server's certificate.
func (j *jwksServer) stores(t testing.TB) *keystore.Manager {
	t.Helper()
	m := newStores(t)
	if err := m.CreateStore("idp", keystore.KindTruststore); err != nil {
		t.Fatal(err)
	}
	if err := m.PutTrusted("idp", "server", []*x509.Certificate{j.srv.Certificate()}); err != nil {
		t.Fatal(err)
	}
	return m
}

// config is a configuration fetching keys from the server.
func (j *jwksServer) config() Config {
	cfg := baseConfig()
	cfg.JWKSURL = j.srv.URL + "/.well-known/jwks.json"
	cfg.JWKSSSL = keystore.SSL{Truststore: "idp"}
	return cfg
}
