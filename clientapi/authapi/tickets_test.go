package authapi

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/prom/promtest"
)

var ownHosts = []string{"hub.example", "10.0.0.5:8443"}

func ticketSolution(t testing.TB, r *rig, edit func(*TicketConfig)) *TicketSolution {
	t.Helper()
	cfg := TicketConfig{ModuleURL: "https://login.example/hub", AllowedRedirects: []string{"https://portal.example"}}
	if edit != nil {
		edit(&cfg)
	}
	s, err := r.api.TicketSolution(cfg, "hub", ownHosts)
	must(t, err)
	return s
}

// TestTicketLogin: a ticket from the mTLS API logs the user in once, with
// a session and a redirect without the ticket; used again, guessed,
// expired, or for another virtual host, it is refused.
func TestTicketLogin(t *testing.T) {
	r := newRig(t, nil)
	sol := ticketSolution(t, r, nil)

	tk := r.ticketFor(t, "", "")
	if len(tk.Ticket) < 22 {
		t.Fatalf("ticket %d characters, want at least 22 (128 bits)", len(tk.Ticket))
	}
	if want := r.clock.now().Add(DefaultTicketTTL); !tk.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %s, want %s", tk.ExpiresAt, want)
	}
	got := sol.Authenticate(browse("https://hub.example/apps/1?sheet=2&qlikTicket=" + tk.Ticket))
	want := auth.Result{Outcome: auth.Authenticated, StartSession: true, Redirect: "/apps/1?sheet=2",
		Identity: auth.Identity{UserID: "alice", Directory: "corp", Groups: []string{"sales"}, Solution: "ticket"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("redeem (-want +got):\n%s", diff)
	}

	refusals := []struct {
		name, reason string
		query        func() string
	}{
		{"reused", "ticket_already_used", func() string { return tk.Ticket }},
		{"guessed", "ticket_unknown", func() string { tok, _ := newToken(); return tok }},
		{"truncated", "ticket_unknown", func() string { return tk.Ticket[:30] }},
		{"expired", "ticket_expired", func() string {
			tok := r.ticketFor(t, "", "").Ticket
			r.clock.add(DefaultTicketTTL)
			return tok
		}},
		{"other virtual host", "wrong_virtual_host", func() string { return r.ticketFor(t, "", "other").Ticket }},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			res := sol.Authenticate(browse("https://hub.example/apps/1?qlikTicket=" + url.QueryEscape(c.query())))
			if res.Outcome != auth.Refused || res.Reason != c.reason || res.StartSession {
				t.Errorf("got %v %q (session %v), want refused %q", res.Outcome, res.Reason, res.StartSession, c.reason)
			}
		})
	}
	t.Run("two tickets", func(t *testing.T) {
		a, b := r.ticketFor(t, "", "").Ticket, r.ticketFor(t, "", "").Ticket
		res := sol.Authenticate(browse("https://hub.example/?qlikTicket=" + a + "&qlikTicket=" + b))
		if res.Outcome != auth.Refused || res.Reason != reasonTicketMalformed {
			t.Errorf("got %v %q, want refused %q", res.Outcome, res.Reason, reasonTicketMalformed)
		}
	})
	t.Run("no ticket", func(t *testing.T) {
		if res := sol.Authenticate(browse("https://hub.example/?other=1")); res.Outcome != auth.NoCredentials {
			t.Errorf("got %v, want no credentials", res.Outcome)
		}
	})
}

// TestTicketTarget: the ticket's target URL, when the module gave one, is
// where the browser goes, on the node's hosts or an allowed origin.
func TestTicketTarget(t *testing.T) {
	r := newRig(t, nil)
	sol := ticketSolution(t, r, nil)
	for target, want := range map[string]string{
		"/hub/stream":                   "/hub/stream",
		"/apps/My%20App?q=a%20b+c":      "/apps/My%20App?q=a%20b+c",
		"https://hub.example/hub/x?y=1": "https://hub.example/hub/x?y=1",
		"HTTPS://HUB.example:8443/A":    "https://hub.example:8443/A",
		"https://10.0.0.5:8443/":        "https://10.0.0.5:8443/",
		"https://portal.example/back":   "https://portal.example/back",
	} {
		tk := r.ticketFor(t, target, "hub")
		res := sol.Authenticate(browse("https://hub.example/?qlikTicket=" + tk.Ticket))
		if res.Outcome != auth.Authenticated || res.Redirect != want {
			t.Errorf("target %q: got %v %q redirect %q, want %q", target, res.Outcome, res.Reason, res.Redirect, want)
		}
	}
}

// TestOpenRedirectsRefused: no target or return URL leads off the node's
// hosts and allowed origins, however it is spelled.
func TestOpenRedirectsRefused(t *testing.T) {
	r := newRig(t, nil)
	sol := ticketSolution(t, r, nil)
	attempts := []string{
		"//evil.com", "//evil.com/path", "https://evil.com", "http://evil.com/", "/\\evil.com", "\\\\evil.com",
		"/%5Cevil.com", "%2F%2Fevil.com", "/%2F/evil.com", "https:evil.com", "https:/evil.com", "https:///evil.com",
		"https://hub.example@evil.com/", "https://evil.com#@hub.example", "https://evil.com\\@hub.example",
		"https://hub.example.evil.com/", "https://evil.com%2F@hub.example", "https://hub.example%00.evil.com/",
		"/\t/evil.com", " //evil.com", "javascript:alert(1)", "data:text/html,x", "evil.com", "ftp://hub.example/",
		"http://portal.example/", "https://portal.example:444/", "https://%68ub.example.evil.com/",
	}
	for _, target := range attempts {
		t.Run("target "+target, func(t *testing.T) {
			// The API refuses every foreign or malformed target when the
			// ticket is asked for: no live ticket is ever handed out for
			// another site (a module may send the browser on as it is).
			var resp TicketResponse
			req := TicketRequest{UserRequest: UserRequest{UserID: "alice", UserDirectory: "corp"}, TargetURL: target}
			if code := r.call(t, r.client, "POST", "/v1/tickets", req, &resp); code != http.StatusBadRequest {
				t.Errorf("POST /v1/tickets: status %d, want 400", code)
			}
			if resp.Ticket != "" {
				t.Errorf("a ticket was issued for %q", target)
			}
		})
	}
	// Without a target the browser goes back to the path it came with:
	// a path that reads as another host is refused.
	for _, path := range []string{"//evil.com/", "/%2F/evil.com", "/%5C%5Cevil.com", "/%09/evil.com"} {
		t.Run("path "+path, func(t *testing.T) {
			tk := r.ticketFor(t, "", "")
			req := browse("https://hub.example/?qlikTicket=" + tk.Ticket)
			dec, err := url.PathUnescape(path)
			must(t, err)
			req.URL.Path, req.URL.RawPath = dec, path
			if res := sol.Authenticate(req); res.Outcome != auth.Refused || res.Redirect != "" {
				t.Errorf("got %v %q, redirect %q; want refused", res.Outcome, res.Reason, res.Redirect)
			}
		})
	}
}

// TestChallenge: a browser without credentials is sent to the module with
// its URL, only for a Host that is the node's own.
func TestChallenge(t *testing.T) {
	r := newRig(t, nil)
	sol := ticketSolution(t, r, nil)
	req := browse("https://hub.example/apps/1?sheet=2")
	req.TLS = &tls.ConnectionState{}
	got, ok := sol.Challenge(req)
	want := "https://login.example/hub?return_to=" + url.QueryEscape("https://hub.example/apps/1?sheet=2")
	if !ok || got != want {
		t.Errorf("Challenge = %q, %v; want %q", got, ok, want)
	}
	for _, host := range []string{"evil.com", "hub.example.evil.com", "hub.example@evil.com"} {
		req := browse("https://hub.example/")
		req.Host = host
		if got, ok := sol.Challenge(req); ok {
			t.Errorf("Host %q: challenged to %q, want no challenge", host, got)
		}
	}
	noModule := ticketSolution(t, r, func(c *TicketConfig) { c.ModuleURL = "" })
	if got, ok := noModule.Challenge(browse("https://hub.example/")); ok {
		t.Errorf("without module_url: challenged to %q", got)
	}
}

// TestConcurrentRedemptions: 10,000 redemptions racing on 1,000 tickets
// give exactly 1,000 logins, one per ticket.
func TestConcurrentRedemptions(t *testing.T) {
	r := newRig(t, nil)
	sol := ticketSolution(t, r, nil)
	const tickets, tries = 1000, 10
	toks := make([]string, tickets)
	for i := range toks {
		var err error
		toks[i], _, err = r.api.tickets.issue(ticket{id: auth.Identity{UserID: "alice", Directory: "corp"}})
		must(t, err)
	}
	var ok atomic.Int64
	perTicket := make([]atomic.Int32, tickets)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for n := range tickets * tries / 50 {
				i := (n*7 + w*131) % tickets
				res := sol.Authenticate(browse("https://hub.example/?qlikTicket=" + toks[i]))
				switch {
				case res.Outcome == auth.Authenticated && res.StartSession:
					ok.Add(1)
					perTicket[i].Add(1)
				case res.Reason != "ticket_already_used":
					t.Errorf("ticket %d: %v %q", i, res.Outcome, res.Reason)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := ok.Load(); got != tickets {
		t.Errorf("%d successful redemptions, want %d", got, tickets)
	}
	for i := range perTicket {
		if n := perTicket[i].Load(); n != 1 {
			t.Fatalf("ticket %d redeemed %d times", i, n)
		}
	}
}

// TestTicketStoreBounded: a full store drops expired tickets, then
// refuses with 503 until some expire.
func TestTicketStoreBounded(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Tickets.Max = 3; c.Tickets.TTL = 10 * time.Second })
	for range 3 {
		r.ticketFor(t, "", "")
	}
	req := TicketRequest{UserRequest: UserRequest{UserID: "alice", UserDirectory: "corp"}}
	if code := r.call(t, r.client, "POST", "/v1/tickets", req, nil); code != http.StatusServiceUnavailable {
		t.Errorf("full store: status %d, want 503", code)
	}
	r.clock.add(10 * time.Second)
	r.ticketFor(t, "", "")
	if n := r.api.tickets.len(); n != 1 {
		t.Errorf("%d tickets kept after the sweep, want 1", n)
	}
}

// TestHandshakeRefused: only clients with a certificate the truststore
// trusts complete the handshake; the CN allow-list narrows them to 403.
func TestHandshakeRefused(t *testing.T) {
	r := newRig(t, func(c *Config) { c.AllowedCommonNames = []string{"auth-module"} })
	body := TicketRequest{UserRequest: UserRequest{UserID: "alice", UserDirectory: "corp"}}
	outsider := newCA(t, "outsider CA")
	for name, c := range map[string]*http.Client{
		"one-way TLS":               r.clientWith(),
		"certificate of another CA": r.clientWith(outsider.tlsCert(t, "auth-module")),
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", r.url+"/v1/tickets", strings.NewReader(`{"user_id":"alice","user_directory":"corp"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("status %d, want the handshake refused", resp.StatusCode)
			}
			// TLS 1.3 clients learn of the refusal from the server's alert.
			var alert tls.AlertError
			if !errors.As(err, &alert) && !strings.Contains(err.Error(), "remote error: tls:") {
				t.Errorf("error %v, want a TLS alert", err)
			}
			t.Logf("refused: %v", err)
		})
	}
	t.Run("common name not allowed", func(t *testing.T) {
		if code := r.call(t, r.clientWith(r.ca.tlsCert(t, "someone-else")), "POST", "/v1/tickets", body, nil); code != http.StatusForbidden {
			t.Errorf("status %d, want 403", code)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		if code := r.call(t, r.client, "POST", "/v1/tickets", body, nil); code != http.StatusCreated {
			t.Errorf("status %d, want 201", code)
		}
	})
	if n := r.api.tickets.len(); n != 1 {
		t.Errorf("%d tickets issued, want 1 (the allowed client's)", n)
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{{"forbidden", "403", 1}, {"POST /v1/tickets", "201", 1}} {
		if got := promtest.Read(r.api.m.calls.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("edgefort_authapi_requests_total{route=%q,code=%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
}

// TestRequestsBounded: bodies are strict, bounded JSON.
func TestRequestsBounded(t *testing.T) {
	r := newRig(t, nil)
	cases := []struct {
		name, ctype, body string
		want              int
	}{
		{"unknown field", "application/json", `{"user_id":"a","user_directory":"d","admin":true}`, 400},
		{"two values", "application/json", `{"user_id":"a","user_directory":"d"}{}`, 400},
		{"not JSON", "application/json", `user_id=a`, 400},
		{"no user", "application/json", `{"user_directory":"d"}`, 400},
		{"control character", "application/json", `{"user_id":"a\n","user_directory":"d"}`, 400},
		{"too large", "application/json", `{"user_id":"` + strings.Repeat("a", 20<<10) + `","user_directory":"d"}`, 413},
		{"form", "application/x-www-form-urlencoded", `{"user_id":"a","user_directory":"d"}`, 415},
		{"fine", "application/json; charset=utf-8", `{"user_id":"a","user_directory":"d"}`, 201},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", r.url+"/v1/tickets", strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ctype)
			resp, err := r.client.Do(req)
			must(t, err)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
}
