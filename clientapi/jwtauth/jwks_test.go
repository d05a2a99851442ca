package jwtauth

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
	"github.com/edgefort/edgefort/keystore"
)

func signKID(t testing.TB, key *rsa.PrivateKey, kid string, st jwttest.Setup) string {
	t.Helper()
	return jwttest.Sign(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS256", "kid": kid}, jwttest.Claims(st))
}

// TestJWKSUnknownKIDRefetch: a token with an unknown kid fetches the set
// again, at most every jwks_min_interval however many such tokens come.
func TestJWKSUnknownKIDRefetch(t *testing.T) {
	clk := newClock()
	a, b := testKeys()[0], testKeys()[1]
	j := newJWKSServer(t)
	j.setKeys(t, map[string]*rsa.PrivateKey{"a": a})
	cfg := j.config()
	cfg.JWKSMinInterval = time.Minute
	s := newTestSolution(t, cfg, clk, j.stores(t))
	st := setup(a, "a", clk)

	mustAuthenticate(t, s, bearer(signKID(t, a, "a", st)))
	if got := j.requests.Load(); got != 1 {
		t.Fatalf("JWKS requests after the first token = %d, want 1", got)
	}
	// b is not published yet: the unknown kid may not refetch within the
	// minimum interval of the first fetch.
	tokB := signKID(t, b, "b", st)
	for range 5 {
		if res := s.Authenticate(bearer(tokB)); res.Reason != ReasonUnknownKID {
			t.Fatalf("kid b before rotation: %v %s, want %s", res.Outcome, res.Reason, ReasonUnknownKID)
		}
	}
	if got := j.requests.Load(); got != 1 {
		t.Fatalf("JWKS requests after 5 unknown kids within the interval = %d, want 1", got)
	}
	// The identity provider rotates to b; past the interval the next
	// unknown kid fetches once and b passes.
	j.setKeys(t, map[string]*rsa.PrivateKey{"a": a, "b": b})
	clk.Advance(time.Minute)
	mustAuthenticate(t, s, bearer(tokB))
	for range 5 {
		s.Authenticate(bearer(signKID(t, b, "c", st)))
	}
	if got := j.requests.Load(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2 (one refetch for b, none for c within the interval)", got)
	}
	clk.Advance(time.Minute)
	s.Authenticate(bearer(signKID(t, b, "c", st)))
	if got := j.requests.Load(); got != 3 {
		t.Errorf("JWKS requests = %d, want 3 after the interval", got)
	}
}

// TestJWKSLastGoodKept: when the refresh fails (status, garbage, a huge
// body, no usable key) the last good set stays in use, and a refetch is
// tried again after jwks_min_interval.
func TestJWKSLastGoodKept(t *testing.T) {
	a := testKeys()[0]
	for _, tt := range []struct {
		name string
		code int
		body []byte
	}{
		{"500", http.StatusInternalServerError, []byte(`{"error":"internal"}`)},
		{"garbage", http.StatusOK, []byte("<html>maintenance</html>")},
		{"huge", http.StatusOK, []byte(`{"keys":[` + strings.Repeat(`{"kty":"oct","k":"AAAA"},`, 20000) + `{}]}`)},
		{"no usable key", http.StatusOK, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"a"}]}`)},
		{"empty set", http.StatusOK, []byte(`{"keys":[]}`)},
		{"redirect", http.StatusFound, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			j := newJWKSServer(t)
			j.setKeys(t, map[string]*rsa.PrivateKey{"a": a})
			cfg := j.config()
			s := newTestSolution(t, cfg, clk, j.stores(t))
			st := setup(a, "a", clk)
			mustAuthenticate(t, s, bearer(signKID(t, a, "a", st)))

			j.set(tt.code, tt.body)
			clk.Advance(DefaultJWKSRefresh)
			st.Now = clk.Now()
			before := j.requests.Load()
			mustAuthenticate(t, s, bearer(signKID(t, a, "a", st)))
			mustAuthenticate(t, s, bearer(signKID(t, a, "a", st)))
			if got := j.requests.Load() - before; got != 1 {
				t.Errorf("refresh attempts = %d, want 1 (then none within the minimum interval)", got)
			}
			clk.Advance(DefaultJWKSMinInterval)
			st.Now = clk.Now()
			mustAuthenticate(t, s, bearer(signKID(t, a, "a", st)))
			if got := j.requests.Load() - before; got != 2 {
				t.Errorf("refresh attempts after the minimum interval = %d, want 2", got)
			}
		})
	}
}

// TestKeyRemovedDropsCachedTokens: a cached token whose key leaves the JWK
// Set is refused at the refresh that removes it.
func TestKeyRemovedDropsCachedTokens(t *testing.T) {
	clk := newClock()
	a, b := testKeys()[0], testKeys()[1]
	j := newJWKSServer(t)
	j.setKeys(t, map[string]*rsa.PrivateKey{"a": a, "b": b})
	cfg := j.config()
	cfg.JWKSRefresh = 10 * time.Minute
	s := newTestSolution(t, cfg, clk, j.stores(t))
	st := setup(a, "a", clk)
	tokA, tokB := signKID(t, a, "a", st), signKID(t, b, "b", st)
	mustAuthenticate(t, s, bearer(tokA))
	mustAuthenticate(t, s, bearer(tokB))
	mustAuthenticate(t, s, bearer(tokA))
	if got := s.verifications.Load(); got != 2 {
		t.Fatalf("verifications = %d, want 2 (the repeat from the cache)", got)
	}
	j.setKeys(t, map[string]*rsa.PrivateKey{"b": b})
	clk.Advance(10 * time.Minute)
	if res := s.Authenticate(bearer(tokA)); res.Reason != ReasonUnknownKID {
		t.Errorf("cached token of a removed key: %v %s, want %s", res.Outcome, res.Reason, ReasonUnknownKID)
	}
	mustAuthenticate(t, s, bearer(tokB))
	if got := s.verifications.Load(); got != 2 {
		t.Errorf("verifications = %d, want 2 (b still from the cache)", got)
	}
}

// TestCache: a repeat request is answered without a signature check; the
// entry ends at exp; the cache holds at most cache.size tokens; with the
// cache off every request is checked.
func TestCache(t *testing.T) {
	key := testKeys()[0]
	t.Run("hit skips verification, ends at exp", func(t *testing.T) {
		clk := newClock()
		cfg := baseConfig()
		cfg.KeyFiles = []string{writeKeyFile(t, key)}
		s := newTestSolution(t, cfg, clk, nil)
		st := setup(key, thumbprint(t, key), clk)
		tok := jwttest.Valid(t, st)
		first := s.Authenticate(bearer(tok))
		if first.Outcome != auth.Authenticated || first.Cached {
			t.Fatalf("first request: %v cached=%t, want authenticated by a verification", first.Outcome, first.Cached)
		}
		first.Identity.Groups[0] = "changed by a caller"
		for range 3 {
			res := s.Authenticate(bearer(tok))
			if res.Outcome != auth.Authenticated || !res.Cached {
				t.Fatalf("repeat: %v cached=%t, want authenticated from the cache", res.Outcome, res.Cached)
			}
			if got := res.Identity; got.Groups[0] != "staff" {
				t.Fatalf("cached identity's groups = %q: a caller's change reached the cache", got.Groups)
			}
		}
		if got := s.verifications.Load(); got != 1 {
			t.Errorf("verifications after 4 requests = %d, want 1", got)
		}
		clk.Advance(time.Hour - time.Second)
		mustAuthenticate(t, s, bearer(tok))
		clk.Advance(time.Second)
		if res := s.Authenticate(bearer(tok)); res.Outcome != auth.Authenticated {
			// exp reached: the entry is gone, the check runs again (and
			// passes within the leeway).
			t.Fatalf("at exp within the leeway: %v %s", res.Outcome, res.Reason)
		}
		if got := s.verifications.Load(); got != 2 {
			t.Errorf("verifications = %d, want 2: the entry must end at exp", got)
		}
		clk.Advance(DefaultLeeway)
		if res := s.Authenticate(bearer(tok)); res.Reason != ReasonExpired {
			t.Errorf("past exp and leeway: %v %s, want %s", res.Outcome, res.Reason, ReasonExpired)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		clk := newClock()
		cfg := baseConfig()
		cfg.KeyFiles = []string{writeKeyFile(t, key)}
		cfg.Cache.Size = 2
		s := newTestSolution(t, cfg, clk, nil)
		st := setup(key, thumbprint(t, key), clk)
		toks := []string{jwttest.Valid(t, st), jwttest.Valid(t, st), jwttest.Valid(t, st)}
		for _, tok := range toks {
			mustAuthenticate(t, s, bearer(tok))
		}
		if n := s.cache.len(); n != 2 {
			t.Errorf("cache holds %d tokens, want 2", n)
		}
		mustAuthenticate(t, s, bearer(toks[2])) // cached
		mustAuthenticate(t, s, bearer(toks[0])) // evicted: checked again
		if got := s.verifications.Load(); got != 4 {
			t.Errorf("verifications = %d, want 4 (the least recently used token evicted)", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		clk := newClock()
		cfg := baseConfig()
		cfg.KeyFiles = []string{writeKeyFile(t, key)}
		off := false
		cfg.Cache.Enabled = &off
		s := newTestSolution(t, cfg, clk, nil)
		tok := jwttest.Valid(t, setup(key, thumbprint(t, key), clk))
		for range 3 {
			mustAuthenticate(t, s, bearer(tok))
		}
		if got := s.verifications.Load(); got != 3 {
			t.Errorf("verifications with the cache off = %d, want 3", got)
		}
	})
}

// TestJWKSFetchShared: requests arriving together before any set was
// fetched share one fetch.
func TestJWKSFetchShared(t *testing.T) {
	clk := newClock()
	a := testKeys()[0]
	j := newJWKSServer(t)
	j.setKeys(t, map[string]*rsa.PrivateKey{"a": a})
	s := newTestSolution(t, j.config(), clk, j.stores(t))
	tok := signKID(t, a, "a", setup(a, "a", clk))
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 16 {
		wg.Go(func() {
			if res := s.Authenticate(bearer(tok)); res.Outcome != auth.Authenticated {
				errs <- res.Reason
			}
		})
	}
	wg.Wait()
	close(errs)
	for r := range errs {
		t.Errorf("concurrent first request refused: %s", r)
	}
	if got := j.requests.Load(); got != 1 {
		t.Errorf("JWKS requests = %d, want 1 shared fetch", got)
	}
}

// TestJWKSServerNotTrusted: the JWK Set is only taken from a server the
// jwks_ssl block trusts; an untrusted one yields no keys.
func TestJWKSServerNotTrusted(t *testing.T) {
	clk := newClock()
	a := testKeys()[0]
	j := newJWKSServer(t)
	j.setKeys(t, map[string]*rsa.PrivateKey{"a": a})
	cfg := j.config()
	cfg.JWKSSSL = keystore.SSL{} // the system roots, which do not know httptest's CA
	s := newTestSolution(t, cfg, clk, nil)
	if res := s.Authenticate(bearer(signKID(t, a, "a", setup(a, "a", clk)))); res.Reason != ReasonUnknownKID {
		t.Errorf("keys from an untrusted server: %v %s, want %s", res.Outcome, res.Reason, ReasonUnknownKID)
	}
	if got := j.requests.Load(); got != 0 {
		t.Errorf("the untrusted server answered %d requests, want 0 (the handshake must fail)", got)
	}
}

// TestJWKAlgPinsKey: a JWK's alg is the only algorithm its key verifies,
// even when the configuration allows others of the same key type; a key
// listed for encryption is not used.
func TestJWKAlgPinsKey(t *testing.T) {
	clk := newClock()
	a, b := testKeys()[0], testKeys()[1]
	j := newJWKSServer(t)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &a.PublicKey, KeyID: "a", Algorithm: "RS256", Use: "sig"},
		{Key: &b.PublicKey, KeyID: "enc", Use: "enc"},
	}}
	body, _ := json.Marshal(set)
	j.set(http.StatusOK, body)
	cfg := j.config()
	cfg.Algorithms = []string{"RS256", "PS256"}
	s := newTestSolution(t, cfg, clk, j.stores(t))
	st := setup(a, "a", clk)
	mustAuthenticate(t, s, bearer(signKID(t, a, "a", st)))
	ps := jwttest.Sign(t, jwt.SigningMethodPS256, a, map[string]any{"alg": "PS256", "kid": "a"}, jwttest.Claims(st))
	if res := s.Authenticate(bearer(ps)); res.Reason != ReasonBadAlg {
		t.Errorf("PS256 with a key pinned to RS256: %v %s, want %s", res.Outcome, res.Reason, ReasonBadAlg)
	}
	if res := s.Authenticate(bearer(signKID(t, b, "enc", st))); res.Reason != ReasonUnknownKID {
		t.Errorf("token under an encryption key: %v %s, want %s", res.Outcome, res.Reason, ReasonUnknownKID)
	}
}
