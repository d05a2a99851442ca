package clientapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/testkit"
)

// loginSolution stands for an interactive login (ticket, SAML): a request
// with X-Test-Login: <user> signs user in and asks for a session, with a
// redirect to X-Test-Redirect when set.
type loginSolution struct{}

func (loginSolution) Kind() string { return "ticket" }
func (loginSolution) Name() string { return "login" }

func (loginSolution) Authenticate(r *http.Request) auth.Result {
	u := r.Header.Get("X-Test-Login")
	if u == "" {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	return auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: u, Directory: "corp", Groups: []string{"g1"}},
		StartSession: true, Redirect: r.Header.Get("X-Test-Redirect")}
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// sessionRig is a running server with two TLS virtual hosts, hub and
// other, and a plain one, each with the login solution then the session
// solution, and a route /app/ to an echo backend that alice may read.
type sessionRig struct {
	*rig
	srv   *Server
	clock *testClock
	urls  map[string]string
	hc    *http.Client
}

func newSessionRig(t *testing.T, sessCfg session.Config) *sessionRig {
	t.Helper()
	r := newRig(t)
	engine := r.backend(t, "engine", echo())
	route := Route{Name: "app", Match: "/app/", Target: "engine", Action: "read", Resource: Resource{Type: "app", ID: "x"}}
	var hosts []VirtualHost
	for _, name := range []string{"hub", "other", "plain"} {
		vh := tlsHost(name)
		if name == "plain" {
			vh.SSL.Enabled = new(bool)
		}
		c := sessCfg
		vh.Authentication = []Solution{{Session: &c}}
		vh.Routes = []Route{route}
		hosts = append(hosts, vh)
	}
	r.authz.permit("alice read app//x")
	r.authz.permit("mallory read app//x")
	clock := &testClock{now: time.Now()}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	deps.Now = clock.Now
	srv, err := New(Config{VirtualHosts: hosts, TargetEndpoints: []TargetEndpoint{engine}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range srv.hosts {
		h.chain.solutions = append([]auth.Solution{loginSolution{}}, h.chain.solutions...)
	}
	runServer(t, srv)
	hc := r.client("", true)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &sessionRig{rig: r, srv: srv, clock: clock, urls: srv.URLs(), hc: hc}
}

// do sends a request with the given headers (name, value pairs) and
// returns the response with its body read.
func (s *sessionRig) do(t *testing.T, method, url string, kv ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// login signs user in on vhost and returns the session cookie's value and
// the CSRF token, with the raw Set-Cookie header.
func (s *sessionRig) login(t *testing.T, vhost, user string, kv ...string) (token, csrf, setCookie string) {
	t.Helper()
	resp, body := s.do(t, "GET", s.urls[vhost]+"/app/start", append([]string{"X-Test-Login", user, "X-Test-Redirect", "/app/home"}, kv...)...)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/home" {
		t.Fatalf("login: %d Location %q %s, want 303 to /app/home", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	sc := resp.Header.Values("Set-Cookie")
	if len(sc) != 1 {
		t.Fatalf("login set %d cookies, want 1: %q", len(sc), sc)
	}
	name := session.DefaultCookiePrefix + vhost
	v, ok := strings.CutPrefix(strings.Split(sc[0], ";")[0], name+"=")
	if !ok || v == "" {
		t.Fatalf("Set-Cookie %q is not the %s cookie", sc[0], name)
	}
	return v, resp.Header.Get(session.HeaderCSRF), sc[0]
}

func cookie(vhost, token string) string { return session.DefaultCookiePrefix + vhost + "=" + token }

// appUser is the user the backend saw for a GET with the cookie, or the
// status when it was not served.
func (s *sessionRig) appUser(t *testing.T, vhost, cookieHeader string) (int, string) {
	t.Helper()
	resp, body := s.do(t, "GET", s.urls[vhost]+"/app/x", "Cookie", cookieHeader)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, ""
	}
	var got seen
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if c := got.Header.Get("Cookie"); strings.Contains(c, session.DefaultCookiePrefix) {
		t.Errorf("the backend got the session cookie: %q", c)
	}
	return resp.StatusCode, got.Header.Get(DefaultUserIDHeader)
}

// The cookie's flags, from the real Set-Cookie header over real TLS, and
// over plain HTTP (not Secure); SameSite=Strict when configured.
func TestSessionCookieFlags(t *testing.T) {
	s := newSessionRig(t, session.Config{})
	_, csrf, sc := s.login(t, "hub", "alice")
	for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(sc, "; "+want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Max-Age") || strings.Contains(sc, "Expires") || strings.Contains(sc, "Domain") {
		t.Errorf("Set-Cookie %q is not a host-only browser-session cookie", sc)
	}
	if csrf == "" {
		t.Error("no CSRF token in the login response")
	}
	_, _, plain := s.login(t, "plain", "alice")
	if strings.Contains(plain, "Secure") {
		t.Errorf("Set-Cookie %q over plain HTTP is Secure", plain)
	}

	strict := newSessionRig(t, session.Config{SameSite: "strict", Cookie: "sid"})
	resp, _ := strict.do(t, "GET", strict.urls["hub"]+"/app/start", "X-Test-Login", "alice")
	if sc := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "sid=") || !strings.Contains(sc, "SameSite=Strict") {
		t.Errorf("Set-Cookie %q, want sid with SameSite=Strict", sc)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a login without a redirect: %d, want the request served", resp.StatusCode)
	}
}

// A session signs the user in on its virtual host only; a login never
// keeps the session id the client came with; revocation and the timeouts
// take effect on the next request; nothing of a token is logged.
func TestSessionLifecycle(t *testing.T) {
	s := newSessionRig(t, session.Config{})
	token, _, _ := s.login(t, "hub", "alice")
	if code, user := s.appUser(t, "hub", cookie("hub", token)); code != 200 || user != "alice" {
		t.Fatalf("with the cookie: %d user %q, want 200 alice", code, user)
	}
	t.Run("other virtual host", func(t *testing.T) {
		for _, c := range []string{cookie("other", token), cookie("hub", token)} {
			if code, _ := s.appUser(t, "other", c); code != http.StatusUnauthorized {
				t.Errorf("hub's session on other as %q: %d, want 401", strings.Split(c, "=")[0], code)
			}
		}
	})
	t.Run("fixation", func(t *testing.T) {
		planted, _, _ := s.login(t, "hub", "mallory")
		for _, fixed := range []string{"attacker-chosen-id", planted, token} {
			got, _, _ := s.login(t, "hub", "alice", "Cookie", cookie("hub", fixed))
			if got == fixed {
				t.Errorf("the login kept the session id the client came with")
			}
		}
		if code, user := s.appUser(t, "hub", cookie("hub", planted)); code != 200 || user != "mallory" {
			t.Errorf("the planted session now: %d %q, want still mallory's own", code, user)
		}
	})
	t.Run("revocation", func(t *testing.T) {
		s.clock.add(time.Second) // this session is the only one created now
		tok, _, _ := s.login(t, "hub", "alice")
		var id string
		for _, in := range s.srv.Sessions().List() {
			if in.Created.Equal(s.clock.Now()) && in.UserID == "alice" {
				id = in.ID
			}
		}
		if _, err := s.srv.Sessions().Revoke(id); err != nil {
			t.Fatal(err)
		}
		if code, _ := s.appUser(t, "hub", cookie("hub", tok)); code != http.StatusUnauthorized {
			t.Errorf("after revoke: %d, want 401", code)
		}
		if _, err := s.srv.Sessions().RevokeUser("corp", "alice"); err != nil {
			t.Fatal(err)
		}
		if code, _ := s.appUser(t, "hub", cookie("hub", token)); code != http.StatusUnauthorized {
			t.Errorf("after revoking the user: %d, want 401", code)
		}
	})
	t.Run("timeouts", func(t *testing.T) {
		tok, _, _ := s.login(t, "hub", "alice")
		s.clock.add(29 * time.Minute)
		if code, _ := s.appUser(t, "hub", cookie("hub", tok)); code != 200 {
			t.Fatalf("within the idle timeout: %d", code)
		}
		s.clock.add(30 * time.Minute)
		if code, _ := s.appUser(t, "hub", cookie("hub", tok)); code != http.StatusUnauthorized {
			t.Errorf("past the idle timeout: %d, want 401", code)
		}
		tok, _, _ = s.login(t, "hub", "alice")
		for range 17 { // 17 × 29m > 8h, each use within the idle timeout
			s.clock.add(29 * time.Minute)
			s.appUser(t, "hub", cookie("hub", tok))
		}
		if code, _ := s.appUser(t, "hub", cookie("hub", tok)); code != http.StatusUnauthorized {
			t.Errorf("past the absolute timeout: %d, want 401", code)
		}
	})
	logs := s.logs.String()
	if strings.Contains(logs, token) {
		t.Errorf("the log holds a session token")
	}
	if len(s.logs.lines("session started")) == 0 {
		t.Errorf("no session start logged")
	}
}

// A cookie-authenticated state-changing request without the session's
// CSRF token (what a cross-site form or fetch sends) is refused with 403
// and never reaches the backend; with the token it is served. The token
// comes from the login response or GET /.edgefort/session.
func TestSessionCSRF(t *testing.T) {
	s := newSessionRig(t, session.Config{})
	token, csrf, _ := s.login(t, "hub", "alice")
	c := cookie("hub", token)
	resp, body := s.do(t, "GET", s.urls["hub"]+PathSession, "Cookie", c)
	var info sessionInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", PathSession, resp.StatusCode, body)
	}
	if info.UserID != "alice" || info.CSRFToken != csrf || info.CSRFHeader != session.HeaderCSRF || info.Expires.IsZero() {
		t.Errorf("session info %+v", info)
	}
	tests := []struct {
		name   string
		method string
		kv     []string
		want   int
	}{
		{"cross-site POST without token", "POST", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"DELETE with a wrong token", "DELETE", []string{session.HeaderCSRF, "nope"}, http.StatusForbidden},
		{"PUT with the token", "PUT", []string{session.HeaderCSRF, csrf}, http.StatusOK},
		{"GET needs none", "GET", nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, tt.method, s.urls["hub"]+"/app/x", append([]string{"Cookie", c}, tt.kv...)...)
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == http.StatusForbidden && (!strings.Contains(body, `"reason":"csrf"`) || strings.Contains(body, `"Method"`)) {
				t.Errorf("body %s: want reason csrf and no backend answer", body)
			}
		})
	}

	// Sign-out needs the token too, then clears the cookie and ends the
	// session.
	if resp, _ := s.do(t, "POST", s.urls["hub"]+PathLogout, "Cookie", c); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the token: %d, want 403", resp.StatusCode)
	}
	resp, _ = s.do(t, "POST", s.urls["hub"]+PathLogout, "Cookie", c, session.HeaderCSRF, csrf)
	if sc := resp.Header.Get("Set-Cookie"); resp.StatusCode != http.StatusNoContent || !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("logout: %d Set-Cookie %q, want 204 clearing the cookie", resp.StatusCode, sc)
	}
	if code, _ := s.appUser(t, "hub", c); code != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", code)
	}
}

// A session solution needs the state store; a solution that opens
// sessions needs a session solution in the chain.
func TestSessionConfigErrors(t *testing.T) {
	r := newRig(t)
	vh := tlsHost("hub")
	vh.Authentication = []Solution{{Session: &session.Config{}}}
	_, err := New(Config{VirtualHosts: []VirtualHost{vh}}, r.deps())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "clients.virtual_hosts[0].authentication[0].session" || !strings.Contains(err.Error(), "state store") {
		t.Errorf("without a store: %v", err)
	}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	vh.Authentication = []Solution{{Session: &session.Config{SameSite: "none"}}}
	if _, err := New(Config{VirtualHosts: []VirtualHost{vh}}, deps); err == nil || !strings.Contains(err.Error(), "same_site") {
		t.Errorf("same_site none: %v", err)
	}
	vh.Authentication = []Solution{{Session: &session.Config{}}, {Session: &session.Config{}}}
	if _, err := New(Config{VirtualHosts: []VirtualHost{vh}}, deps); err == nil || !strings.Contains(err.Error(), "one session solution") {
		t.Errorf("two session solutions: %v", err)
	}
}

// starterSolution is loginSolution declaring that it opens sessions.
type starterSolution struct{ loginSolution }

func (starterSolution) StartsSessions() bool { return true }

// A solution that opens sessions needs a session solution in its chain:
// the configuration is refused when it declares so, and a login that asks
// for a session anyway gets 500 rather than a cookie nothing reads.
func TestSessionWithoutSessionSolution(t *testing.T) {
	r := newRig(t)
	h := &virtualHost{cfg: VirtualHost{Name: "hub"}, chain: chain{solutions: []auth.Solution{starterSolution{}}}}
	var fe *FieldError
	if err := h.checkSessionStarters(0); !errors.As(err, &fe) || !strings.Contains(err.Error(), "add a session solution") {
		t.Errorf("a session-starting solution without a session solution: %v", err)
	}

	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	srv, err := New(Config{VirtualHosts: []VirtualHost{tlsHost("hub")}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range srv.hosts {
		h.chain.solutions = append(h.chain.solutions, loginSolution{})
		rt := &route{cfg: Route{Name: "app"}, proxy: http.NotFoundHandler(),
			requests: srv.m.requests.MustCurryWith(prom.Labels{"virtual_host": h.cfg.Name, "route": "app"}),
			latency:  srv.m.latency.WithLabelValues(h.cfg.Name, "app")}
		h.mux.Handle("/app/", h.routeHandler(rt))
	}
	runServer(t, srv)
	hc := r.client("", true)
	req, _ := http.NewRequest("GET", srv.URLs()["hub"]+"/app/x", nil)
	req.Header.Set("X-Test-Login", "alice")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), ReasonNoSessionSolution) || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("login without a session solution: %d %s Set-Cookie %q", resp.StatusCode, body, resp.Header.Get("Set-Cookie"))
	}
}
