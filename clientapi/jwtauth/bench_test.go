package jwtauth

import (
	"testing"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
)

// benchmarkAuthenticate authenticates one RS256 (2048-bit) token per
// operation, in parallel, with the verified-token cache on or off.
func benchmarkAuthenticate(b *testing.B, cache bool) {
	key := testKeys()[0]
	clk := newClock()
	cfg := baseConfig()
	cfg.KeyFiles = []string{writeKeyFile(b, key)}
	cfg.Cache.Enabled = &cache
	s := newTestSolution(b, cfg, clk, nil)
	tok := jwttest.Valid(b, setup(key, thumbprint(b, key), clk))
	mustAuthenticate(b, s, bearer(tok))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := bearer(tok)
		for pb.Next() {
			if res := s.Authenticate(r); res.Outcome != auth.Authenticated {
				b.Errorf("Authenticate: %v %s", res.Outcome, res.Reason)
				return
			}
		}
	})
	b.StopTimer()
	if n := s.verifications.Load(); cache && n != 1 {
		b.Errorf("verifications = %d with the cache on, want 1", n)
	}
}

func BenchmarkAuthenticateCached(b *testing.B)   { benchmarkAuthenticate(b, true) }
func BenchmarkAuthenticateUncached(b *testing.B) { benchmarkAuthenticate(b, false) }
