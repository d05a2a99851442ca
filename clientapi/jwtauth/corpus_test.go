package jwtauth

import (
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
)

// TestAttackCorpus runs jwttest.Corpus against a solution with a key file
// and one with a JWK Set on a TLS socket (from which a key was removed),
// each with and without the cookie, cache on: every case is refused with
// its reason (or not read at all), nothing is cached, and a valid token
// still passes afterwards.
func TestAttackCorpus(t *testing.T) {
	key, removed := testKeys()[0], testKeys()[2]
	for _, tt := range []struct {
		name   string
		jwks   bool
		cookie string
	}{
		{"key file", false, ""},
		{"key file, cookie", false, "edge_token"},
		{"jwks", true, ""},
		{"jwks, cookie", true, "edge_token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			var s *Solution
			st := setup(key, "", clk)
			st.Cookie = tt.cookie
			if tt.jwks {
				j := newJWKSServer(t)
				j.setKeys(t, map[string]*rsa.PrivateKey{"k1": key, "gone": removed})
				cfg := j.config()
				cfg.Cookie = tt.cookie
				cfg.Algorithms = []string{"RS256", "ES256", "PS256"}
				s = newTestSolution(t, cfg, clk, j.stores(t))
				st.KID = "k1"
				st.RemovedKey, st.RemovedKID = removed, "gone"
				// The removed key's token passes while its key is served...
				goneTok := jwttest.Sign(t, jwt.SigningMethodRS256, removed, map[string]any{"alg": "RS256", "kid": "gone"}, jwttest.Claims(st))
				mustAuthenticate(t, s, bearer(goneTok))
				// ...then the set drops it and is refreshed.
				j.setKeys(t, map[string]*rsa.PrivateKey{"k1": key})
				clk.Advance(DefaultJWKSRefresh)
				st.Now = clk.Now()
				mustAuthenticate(t, s, bearer(jwttest.Valid(t, st)))
			} else {
				cfg := baseConfig()
				cfg.KeyFiles = []string{writeKeyFile(t, key)}
				cfg.Cookie = tt.cookie
				s = newTestSolution(t, cfg, clk, nil)
				st.KID = thumbprint(t, key)
			}
			cached := s.cache.len()
			cases := jwttest.Corpus(t, st)
			if len(cases) < 30 {
				t.Fatalf("corpus has %d cases, want at least 30", len(cases))
			}
			for _, c := range cases {
				t.Run(c.Name, func(t *testing.T) {
					for range 2 { // the second time would come from the cache, if anything were cached
						r := httptest.NewRequest(http.MethodGet, "https://node.test/", nil)
						c.Apply(r)
						res := s.Authenticate(r)
						if res.Outcome != c.Outcome || res.Reason != c.Reason {
							t.Fatalf("got %v %q (%v), want %v %q", res.Outcome, res.Reason, res.Err, c.Outcome, c.Reason)
						}
						if res.Outcome == auth.Refused && res.Err == nil {
							t.Errorf("refused without an error for the log")
						}
					}
				})
			}
			if n := s.cache.len(); n != cached {
				t.Errorf("cache holds %d tokens after the corpus, want %d", n, cached)
			}
			mustAuthenticate(t, s, bearer(jwttest.Valid(t, st)))
			if tt.cookie != "" {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.AddCookie(&http.Cookie{Name: tt.cookie, Value: jwttest.Valid(t, st)})
				mustAuthenticate(t, s, r)
			}
		})
	}
}
