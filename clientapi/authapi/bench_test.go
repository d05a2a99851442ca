package authapi

import (
	"testing"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// BenchmarkTicketRedeem is a ticket login's cost at the solution: parse
// the query, hash, redeem under the lock, check the redirect.
func BenchmarkTicketRedeem(b *testing.B) {
	r := newRig(b, func(c *Config) { c.Tickets.Max = 1_000_000 })
	sol := ticketSolution(b, r, nil)
	reqs := make([]string, b.N)
	for i := range reqs {
		tok, _, err := r.api.tickets.issue(ticket{id: auth.Identity{UserID: "alice", Directory: "corp"}})
		must(b, err)
		reqs[i] = "https://hub.example/apps/1?sheet=2&qlikTicket=" + tok
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if res := sol.Authenticate(browse(reqs[i])); res.Outcome != auth.Authenticated {
			b.Fatalf("%v %q", res.Outcome, res.Reason)
		}
	}
}

// BenchmarkSessionModule is the per-request cost of a portal session
// cookie: read the cookie, hash, look up, touch.
func BenchmarkSessionModule(b *testing.B) {
	r := newRig(b, nil)
	sol := sessionSolution(b, r, "hub")
	s := r.register(b, "", "")
	req := withCookie(s.SessionID)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := sol.Authenticate(req); res.Outcome != auth.Authenticated {
				b.Fatalf("%v %q", res.Outcome, res.Reason)
			}
		}
	})
}
