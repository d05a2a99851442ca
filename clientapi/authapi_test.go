package clientapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// authAPIRig runs the authentication API beside the rig's client API: its
// listener uses the hub keystore and trusts the rig's CA for modules.
func (r *rig) authAPI(t *testing.T, now func() time.Time) (*authapi.API, *http.Client, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	ready := make(chan struct{})
	api, err := authapi.New(authapi.Config{Listen: "127.0.0.1:0", SSL: keystore.SSL{ClientAuthEnabled: true, Keystore: "hub", Truststore: "ca"}},
		authapi.Deps{Keystores: r.stores, Now: now, Ready: func() { close(ready) }, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("authapi Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("authapi Run: %v", err)
	}
	key, cert := r.pki.issue(t, "auth-module")
	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	module := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hub.example",
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}}}
	return api, module, logs
}

// post sends v to the API and decodes its 201 answer into out.
func post(t *testing.T, c *http.Client, url string, v, out any) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := c.Post(url, "application/json", bytes.NewReader(b))
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
	must(t, json.Unmarshal(body, out))
}

// TestTicketAndSessionModuleThroughTheChain: over real sockets, a module
// gets a ticket over mTLS and the browser presents it to the virtual host;
// the chain authenticates alice by the ticket once, refuses it reused,
// guessed or expired (the API's clock moved past its TTL); a
// portal's session token in the cookie authenticates until the portal
// deletes it. No ticket or session id reaches any log. A ticket login is
// a 303 to the page without the ticket, with the node's session cookie,
// which then serves alice.
func TestTicketAndSessionModuleThroughTheChain(t *testing.T) {
	r := newRig(t)
	var clock atomic.Int64 // seconds added to the API's clock
	api, module, apiLogs := r.authAPI(t, func() time.Time { return time.Now().Add(time.Duration(clock.Load()) * time.Second) })
	apiURL := "https://" + api.Addr()
	cfg := hubConfig(r.backend(t, "engine", echo()))
	dead := r.backend(t, "dead", echo())
	dead.URL = "https://127.0.0.1:1" // nothing listens: the proxy's error names the URL
	cfg.TargetEndpoints = append(cfg.TargetEndpoints, dead)
	cfg.VirtualHosts[0].Routes = append(cfg.VirtualHosts[0].Routes,
		Route{Name: "dead", Match: "GET /dead/", Target: "dead", Action: "app.read", Resource: Resource{Type: "app", ID: "a1", Space: "sales"}})
	cfg.VirtualHosts[0].Authentication = []Solution{
		{Session: &session.Config{}},
		{Ticket: &authapi.TicketConfig{ModuleURL: "https://login.example/"}},
		{SessionModule: &authapi.SessionModuleConfig{Cookie: "portal"}},
	}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	deps.AuthAPI = api
	srv, err := New(cfg, deps)
	must(t, err)
	runServer(t, srv)
	r.authz.permit("alice app.read app/sales/a1")
	base := srv.URLs()["hub"]
	client := r.client("", false)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path, cookie string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Accept", "text/html")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "portal", Value: cookie})
		}
		resp, err := client.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var p struct{ Reason string }
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &p)
		return resp.StatusCode, p.Reason
	}

	var tk, dead2 authapi.TicketResponse
	post(t, module, apiURL+"/v1/tickets", authapi.TicketRequest{UserRequest: authapi.UserRequest{UserID: "alice", UserDirectory: "corp"}}, &tk)
	ticketLogin(t, client, base+"/api/v1/apps/a1/?sheet=2&qlikTicket="+tk.Ticket, "/api/v1/apps/a1/?sheet=2")
	// A ticket is redeemed before any backend is asked: a dead backend
	// behind the route changes nothing (and its error never logs the
	// query).
	post(t, module, apiURL+"/v1/tickets", authapi.TicketRequest{UserRequest: authapi.UserRequest{UserID: "alice", UserDirectory: "corp"}}, &dead2)
	if code, _ := get("/dead/?qlikTicket="+dead2.Ticket, ""); code != http.StatusSeeOther {
		t.Errorf("ticket to a dead backend: %d, want 303", code)
	}
	// A browser with no credentials is sent to the module with the page
	// to come back to; an API client gets 401.
	for _, accept := range []string{"text/html,application/xhtml+xml", "application/json"} {
		req, _ := http.NewRequest("GET", base+"/api/v1/apps/a1/?sheet=3", nil)
		req.Header.Set("Accept", accept)
		resp, err := client.Do(req)
		must(t, err)
		resp.Body.Close()
		loc, _ := neturl.Parse(resp.Header.Get("Location"))
		switch {
		case accept == "application/json" && resp.StatusCode != http.StatusUnauthorized:
			t.Errorf("API client without credentials: %d, want 401", resp.StatusCode)
		case accept != "application/json" && (resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Host != "login.example" ||
			!strings.HasSuffix(loc.Query().Get("return_to"), "/api/v1/apps/a1/?sheet=3")):
			t.Errorf("browser without credentials: %d to %q, want 303 to https://login.example/?return_to=<the page>", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	var old authapi.TicketResponse
	post(t, module, apiURL+"/v1/tickets", authapi.TicketRequest{UserRequest: authapi.UserRequest{UserID: "alice", UserDirectory: "corp"}}, &old)
	clock.Add(int64(authapi.DefaultTicketTTL / time.Second))
	for _, c := range []struct{ name, ticket, reason string }{
		{"reused", tk.Ticket, "ticket_already_used"},
		{"guessed", strings.Repeat("x", len(tk.Ticket)), "ticket_unknown"},
		{"expired", old.Ticket, "ticket_expired"},
	} {
		if code, reason := get("/api/v1/apps/a1/?qlikTicket="+c.ticket, ""); code != http.StatusUnauthorized || reason != c.reason {
			t.Errorf("%s ticket: %d %q, want 401 %q", c.name, code, reason, c.reason)
		}
	}

	var s authapi.SessionResponse
	post(t, module, apiURL+"/v1/sessions", authapi.SessionRequest{UserRequest: authapi.UserRequest{UserID: "alice", UserDirectory: "corp", VirtualHost: "hub"}}, &s)
	if code, reason := get("/api/v1/apps/a1/", s.SessionID); code != http.StatusOK {
		t.Errorf("with the portal's session: %d %s, want 200", code, reason)
	}
	req, _ := http.NewRequest("DELETE", apiURL+"/v1/sessions/"+s.SessionID, nil)
	resp, err := module.Do(req)
	must(t, err)
	resp.Body.Close()
	if code, reason := get("/api/v1/apps/a1/", s.SessionID); code != http.StatusUnauthorized || reason != "session_unknown" {
		t.Errorf("after the portal deleted the session: %d %q, want 401 session_unknown", code, reason)
	}

	audit := r.logs.lines("authentication")
	var byTicket, bySession int
	for _, l := range audit {
		switch {
		case l["solution"] == "ticket" && l["result"] == "authenticated" && l["user"] == "alice":
			byTicket++
		case l["solution"] == "session_module" && l["result"] == "authenticated" && l["user"] == "alice":
			bySession++
		}
	}
	if byTicket != 2 || bySession != 1 {
		t.Errorf("audit: %d logins by ticket and %d by session, want 2 and 1:\n%s", byTicket, bySession, r.logs)
	}
	for _, secret := range []string{tk.Ticket, dead2.Ticket, old.Ticket, s.SessionID} {
		for name, logs := range map[string]string{"client API": r.logs.String(), "authentication API": apiLogs.String()} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s log carries a ticket or session id:\n%s", name, logs)
			}
		}
	}
}

// ticketLogin presents a ticket at url. On main the chain does not act on
// StartSession/Redirect yet and serves the request as alice; once the
// node's sessions land it answers 303 to want (the URL without the ticket)
// with the session cookie, and this follows it with the cookie to alice's
// page: the end-to-end login.
func ticketLogin(t *testing.T, client *http.Client, url, want string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := client.Do(req)
	must(t, err)
	var got seen
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if u := got.Header.Get("X-Edgefort-User"); u != "alice" {
			t.Errorf("served by the ticket as %q, want alice", u)
		}
		return
	case http.StatusSeeOther:
	default:
		t.Fatalf("with the ticket: %d, want alice served or redirected", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != want {
		t.Errorf("redirect to %q, want %q", loc, want)
	}
	cookies := resp.Cookies()
	if len(cookies) == 0 {
		t.Fatal("the ticket login set no session cookie")
	}
	loc, err := neturl.Parse(want)
	must(t, err)
	next, _ := http.NewRequest("GET", resp.Request.URL.ResolveReference(loc).String(), nil)
	for _, c := range cookies {
		next.AddCookie(c)
	}
	resp, err = client.Do(next)
	must(t, err)
	got = seen{}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || got.Header.Get("X-Edgefort-User") != "alice" {
		t.Errorf("with the session cookie: %d, user %q; want 200 as alice", resp.StatusCode, got.Header.Get("X-Edgefort-User"))
	}
}

// TestTicketRedemptionsRace: 10,000 redemptions racing over real TLS on
// 1,000 tickets (each presented ten times at once) sign in exactly 1,000
// times, one per ticket, and the node's session store holds exactly
// 1,000 sessions; every other attempt is refused as a used ticket.
func TestTicketRedemptionsRace(t *testing.T) {
	const tickets, tries = 1000, 10
	r := newRig(t)
	api, module, _ := r.authAPI(t, time.Now)
	cfg := hubConfig(r.backend(t, "engine", echo()))
	vh := &cfg.VirtualHosts[0]
	vh.Authentication = []Solution{
		{Session: &session.Config{MaxPerUser: tickets}},
		{Ticket: &authapi.TicketConfig{}},
	}
	// Refused redemptions are failures of one client address: the limit
	// must not turn them into 429s that hide whether a ticket worked.
	vh.FailedAuthLimit = RateLimit{PerSecond: 1e6, Burst: 1e6}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	deps.AuthAPI = api
	srv, err := New(cfg, deps)
	must(t, err)
	runServer(t, srv)
	base := srv.URLs()["hub"]

	issued := make([]string, tickets)
	for i := range issued {
		var tk authapi.TicketResponse
		post(t, module, "https://"+api.Addr()+"/v1/tickets", authapi.TicketRequest{
			UserRequest: authapi.UserRequest{UserID: "alice", UserDirectory: "corp"}, TargetURL: "/api/v1/apps/a1/"}, &tk)
		issued[i] = tk.Ticket
	}
	client := r.client("", true)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var signedIn, refused, other atomic.Int64
	var wg sync.WaitGroup
	for w := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tickets {
				tk := issued[(i+w*tickets/tries)%tickets] // each worker starts elsewhere, so tries overlap
				resp, err := client.Get(base + "/api/v1/apps/a1/?qlikTicket=" + tk)
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusSeeOther:
					signedIn.Add(1)
				case http.StatusUnauthorized:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if signedIn.Load() != tickets || refused.Load() != tickets*(tries-1) || other.Load() != 0 {
		t.Errorf("%d sign-ins, %d refusals, %d other answers; want %d, %d, 0", signedIn.Load(), refused.Load(), other.Load(), tickets, tickets*(tries-1))
	}
	if n := len(srv.Sessions().List()); n != tickets {
		t.Errorf("the session store holds %d sessions, want %d", n, tickets)
	}
}
