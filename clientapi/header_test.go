package clientapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/headerauth"
)

// The addresses the header tests connect from: the trusted proxy, and
// any other client on the network.
const (
	proxyAddr = "127.0.0.2"
	otherAddr = "127.0.0.1"
)

// counting is a backend that counts the requests reaching it.
type counting struct {
	n atomic.Int64
	h http.Handler
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.n.Add(1); c.h.ServeHTTP(w, r) }

// headerConfig is the hub with the chain header (trusting proxyAddr only)
// then anonymous, an app route and an anonymous route.
func headerConfig(engine TargetEndpoint) Config {
	vh := tlsHost("hub")
	vh.Authentication = []Solution{
		{Header: &headerauth.Config{Name: "proxy", UserHeader: "X-Remote-User", DirectoryHeader: "X-Remote-Directory",
			Directory: "portal", GroupsHeader: "X-Remote-Groups", TrustedProxies: []string{proxyAddr + "/32"}}},
		{Anonymous: &Anonymous{}},
	}
	vh.Routes = []Route{
		{Name: "apps", Match: "GET /api/v1/apps/{app}/", Target: engine.Name, Action: "app.read", Resource: Resource{Type: "app", ID: "{app}", Space: "sales"}},
		{Name: "public", Match: "GET /public/", Target: engine.Name, Action: "page.read", Resource: Resource{Type: "space", ID: "sales"}, Anonymous: true},
	}
	return Config{VirtualHosts: []VirtualHost{vh}, TargetEndpoints: []TargetEndpoint{engine}}
}

// startChain runs a Server for cfg with the test token solution at
// position at of each chain (-1: none), on a clock that stands still.
func (r *rig) startChain(t *testing.T, cfg Config, at int) *Server {
	t.Helper()
	deps := r.deps()
	now := time.Now()
	deps.Now = func() time.Time { return now }
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if at >= 0 {
		for _, h := range srv.hosts {
			h.chain.solutions = append(h.chain.solutions[:at], append([]auth.Solution{testTokens}, h.chain.solutions[at:]...)...)
			h.chain.bearer = true
		}
	}
	runServer(t, srv)
	return srv
}

// hubCall is one request to the hub from a local address.
type hubCall struct {
	from   string
	h2     bool
	path   string
	header http.Header
}

// do sends c and returns the status, the problem's reason and what the
// backend saw (zero unless 200).
func (c hubCall) do(t *testing.T, r *rig, base string) (int, string, seen) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+c.path, nil)
	req.Host = "hub.example"
	for k, v := range c.header {
		req.Header[k] = v
	}
	client := r.client(c.from, c.h2)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if c.h2 && resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	var s seen
	if resp.StatusCode != 200 {
		var p problem
		json.Unmarshal(body, &p)
		return resp.StatusCode, p.Reason, s
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return resp.StatusCode, "", s
}

// TestHeaderSolutionTrustsOnlyItsProxies: over real TLS from real source
// addresses, the user headers are believed from the trusted proxy only
// (and reach the backend as the node's identity headers, with the Host the
// client asked for); from any other address they are refused with 401,
// the backend never sees the request, and the attempt is logged, at most
// once a minute per address; bad values from the proxy are refused too.
func TestHeaderSolutionTrustsOnlyItsProxies(t *testing.T) {
	r := newRig(t)
	backend := &counting{h: echo()}
	srv := r.startChain(t, headerConfig(r.backend(t, "engine", backend)), -1)
	r.authz.permit("alice app.read app/sales/a1")
	r.authz.permit("anonymous page.read space//sales")
	base := srv.URLs()["hub"]
	user := func(v ...string) http.Header { return http.Header{"X-Remote-User": v} }
	with := func(h http.Header, k string, v ...string) http.Header { h[k] = v; return h }
	type want struct {
		code   int
		reason string
		header map[string]string // at the backend; "" means absent
	}
	alice := map[string]string{"X-Edgefort-User": "alice", "X-Edgefort-Directory": "portal", "X-Edgefort-Groups": "",
		"X-Remote-User": "", "X-Remote-Directory": "", "X-Remote-Groups": "", "X-Edgefort-Anonymous": ""}
	tests := []struct {
		name string
		call hubCall
		want want
	}{
		{"trusted proxy names the user", hubCall{proxyAddr, false, "/api/v1/apps/a1/", user("alice")}, want{200, "", alice}},
		{"trusted proxy over HTTP/2", hubCall{proxyAddr, true, "/api/v1/apps/a1/", user("alice")}, want{200, "", alice}},
		{"trusted proxy names directory and groups", hubCall{proxyAddr, false, "/api/v1/apps/a1/",
			with(with(user("alice"), "X-Remote-Directory", "corp"), "X-Remote-Groups", "sales, staff,,")},
			want{200, "", map[string]string{"X-Edgefort-User": "alice", "X-Edgefort-Directory": "corp", "X-Edgefort-Groups": "sales,staff", "X-Remote-Groups": ""}}},
		{"spoofed user from another address", hubCall{otherAddr, false, "/api/v1/apps/a1/", user("alice")}, want{401, headerauth.ReasonUntrustedSource, nil}},
		{"spoofed user over HTTP/2", hubCall{otherAddr, true, "/api/v1/apps/a1/", user("alice")}, want{401, headerauth.ReasonUntrustedSource, nil}},
		{"spoofed groups alone on the anonymous route", hubCall{otherAddr, false, "/public/x", http.Header{"X-Remote-Groups": {"admins"}}},
			want{401, headerauth.ReasonUntrustedSource, nil}},
		{"user sent twice", hubCall{proxyAddr, false, "/api/v1/apps/a1/", user("alice", "admin")}, want{401, headerauth.ReasonInvalidValue, nil}},
		{"control character", hubCall{proxyAddr, false, "/api/v1/apps/a1/", user("ali\tce")}, want{401, headerauth.ReasonInvalidValue, nil}},
		{"user too long", hubCall{proxyAddr, false, "/api/v1/apps/a1/", user(strings.Repeat("a", headerauth.MaxValueBytes+1))},
			want{401, headerauth.ReasonInvalidValue, nil}},
		{"too many groups", hubCall{proxyAddr, false, "/api/v1/apps/a1/", with(user("alice"), "X-Remote-Groups", strings.Repeat("g,", headerauth.MaxGroups+1))},
			want{401, headerauth.ReasonInvalidValue, nil}},
		{"proxy names no user: the chain goes on to anonymous", hubCall{proxyAddr, false, "/public/x",
			http.Header{"X-Remote-Groups": {"admins"}, "X-Edgefort-Anonymous": {"false"}}},
			want{200, "", map[string]string{"X-Edgefort-User": "anonymous", "X-Edgefort-Anonymous": "true", "X-Remote-Groups": "", "X-Edgefort-Groups": ""}}},
		{"no headers, from anywhere: anonymous", hubCall{otherAddr, false, "/public/x", nil},
			want{200, "", map[string]string{"X-Edgefort-User": "anonymous", "X-Edgefort-Anonymous": "true"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := backend.n.Load()
			code, reason, s := tt.call.do(t, r, base)
			if code != tt.want.code || reason != tt.want.reason {
				t.Fatalf("got %d %q, want %d %q", code, reason, tt.want.code, tt.want.reason)
			}
			reached := backend.n.Load() - before
			if code != 200 {
				if reached != 0 {
					t.Errorf("the backend received %d requests, want none", reached)
				}
				return
			}
			if s.Host != "hub.example" {
				t.Errorf("backend Host %q, want the client's hub.example", s.Host)
			}
			for k, v := range tt.want.header {
				if got := strings.Join(s.Header.Values(k), ","); got != v {
					t.Errorf("backend header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
	warnings := r.logs.lines("user header from an address that is not a trusted proxy: refused")
	if len(warnings) != 1 || warnings[0]["client"] != otherAddr || warnings[0]["solution"] != "proxy" {
		t.Errorf("spoofing warnings %v, want one (rate-limited) for %s by solution proxy", warnings, otherAddr)
	}
	refused := 0
	for _, l := range r.logs.lines("authentication") {
		if l[logKeyReason] == headerauth.ReasonUntrustedSource {
			refused++
			if l[logKeySolution] != "proxy" || l[logKeyClient] != otherAddr || l[logKeyResult] != "refused" {
				t.Errorf("audit line %v: want solution proxy, client %s, result refused", l, otherAddr)
			}
		}
	}
	if refused != 3 {
		t.Errorf("%d audit lines for untrusted headers, want 3 (every attempt)", refused)
	}
	if n := counterValue(srv.m.auth.WithLabelValues("hub", "proxy", "refused")); n != 7 {
		t.Errorf("auth_total{solution=proxy,result=refused} = %v, want 7 (3 untrusted, 4 invalid)", n)
	}
	if strings.Contains(r.logs.String(), strings.Repeat("a", headerauth.MaxValueBytes)) {
		t.Errorf("a refused header value is in the log")
	}
}

// TestChainOrderFirstSuccessWins runs header → jwt → anonymous, then jwt →
// header → anonymous: the first solution that finds its credentials
// decides (authenticated or refused), each decision is audited with the
// deciding solution's name, and the configured headers never reach the
// backend whichever solution decided.
func TestChainOrderFirstSuccessWins(t *testing.T) {
	r := newRig(t)
	backend := &counting{h: echo()}
	cfg := headerConfig(r.backend(t, "engine", backend))
	r.authz.permit("alice app.read app/sales/a1")
	r.authz.permit("carol app.read app/sales/a1")
	r.authz.permit("anonymous page.read space//sales")
	both := http.Header{"X-Remote-User": {"carol"}, "Authorization": {"Bearer alice-token"}}
	tests := []struct {
		name     string
		tokensAt int // the jwt stand-in's place in the chain
		call     hubCall
		code     int
		user     string // at the backend, or the reason
		solution string // in the audit line
	}{
		{"header first: the proxy's user wins over a token", 1, hubCall{proxyAddr, false, "/api/v1/apps/a1/", both}, 200, "carol", "proxy"},
		{"header first: no header, the token decides", 1, hubCall{proxyAddr, false, "/api/v1/apps/a1/", http.Header{"Authorization": {"Bearer alice-token"}}}, 200, "alice", "tokens"},
		{"header first: a spoofed header is refused despite a good token", 1, hubCall{otherAddr, false, "/api/v1/apps/a1/", both}, 401, headerauth.ReasonUntrustedSource, "proxy"},
		{"header first: a bad token is refused by jwt", 1, hubCall{otherAddr, false, "/api/v1/apps/a1/", http.Header{"Authorization": {"Bearer forged"}}}, 401, "bad_token", "tokens"},
		{"header first: nothing, anonymous", 1, hubCall{otherAddr, false, "/public/x", nil}, 200, "anonymous", "anonymous"},
		{"jwt first: the token wins over the proxy's user", 0, hubCall{proxyAddr, false, "/api/v1/apps/a1/", both}, 200, "alice", "tokens"},
		{"jwt first: the token decides, the spoofed header is stripped", 0, hubCall{otherAddr, false, "/api/v1/apps/a1/", both}, 200, "alice", "tokens"},
		{"jwt first: no token, the header decides", 0, hubCall{proxyAddr, false, "/api/v1/apps/a1/", http.Header{"X-Remote-User": {"carol"}}}, 200, "carol", "proxy"},
	}
	servers := map[int]string{}
	for _, at := range []int{0, 1} {
		servers[at] = r.startChain(t, cfg, at).URLs()["hub"]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := backend.n.Load()
			code, reason, s := tt.call.do(t, r, servers[tt.tokensAt])
			got := reason
			if code == 200 {
				got = s.Header.Get("X-Edgefort-User")
				if s.Header.Get("X-Remote-User") != "" {
					t.Errorf("the backend received X-Remote-User %q", s.Header.Get("X-Remote-User"))
				}
			} else if n := backend.n.Load() - before; n != 0 {
				t.Errorf("the backend received %d requests, want none", n)
			}
			if code != tt.code || got != tt.user {
				t.Fatalf("got %d %q, want %d %q", code, got, tt.code, tt.user)
			}
			lines := r.logs.lines("authentication")
			if last := lines[len(lines)-1]; last[logKeySolution] != tt.solution {
				t.Errorf("audit line %v: solution %v, want %s", last, last[logKeySolution], tt.solution)
			}
		})
	}
}
