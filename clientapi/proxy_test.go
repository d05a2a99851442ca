package clientapi

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/keystore"
)

// hubConfig is a virtual host with an app route, an anonymous route and a
// route that strips its prefix, all to one backend.
func hubConfig(engine TargetEndpoint) Config {
	vh := tlsHost("hub")
	vh.Authentication = []Solution{{Anonymous: &Anonymous{}}}
	vh.Routes = []Route{
		{Name: "apps", Match: "GET /api/v1/apps/{app}/", Target: engine.Name, Action: "app.read", Resource: Resource{Type: "app", ID: "{app}", Space: "sales"}},
		{Name: "public", Match: "GET /public/", Target: engine.Name, Action: "page.read", Resource: Resource{Type: "space", ID: "sales"}, Anonymous: true},
		{Name: "stripped", Match: "/s/", Target: engine.Name, StripPrefix: "/s", Action: "app.read", Resource: Resource{Type: "app", ID: "fixed", Space: "sales"}},
	}
	return Config{VirtualHosts: []VirtualHost{vh}, TargetEndpoints: []TargetEndpoint{engine}}
}

func TestRoutesAuthenticateAuthorizeAndProxy(t *testing.T) {
	r := newRig(t)
	srv := r.start(t, hubConfig(r.backend(t, "engine", echo())))
	r.authz.permit("alice app.read app/sales/a1")
	r.authz.permit("alice app.read app/sales/fixed")
	r.authz.permit("anonymous page.read space//sales")
	base := srv.URLs()["hub"]
	client := r.client("", false)

	type want struct {
		code   int
		reason string
		path   string            // at the backend
		header map[string]string // at the backend; "" means absent
		www    string
	}
	identity := func(user string) map[string]string {
		return map[string]string{"X-Edgefort-User": user, "X-Edgefort-Directory": map[string]string{"alice": "corp", "anonymous": "anonymous"}[user]}
	}
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		want   want
	}{
		{"alice reads her app", "GET", "/api/v1/apps/a1/sheets", map[string]string{"Authorization": "Bearer alice-token"},
			want{code: 200, path: "/api/v1/apps/a1/sheets", header: identity("alice")}},
		{"alice's groups", "GET", "/api/v1/apps/a1/", map[string]string{"Authorization": "Bearer alice-token"},
			want{code: 200, path: "/api/v1/apps/a1/", header: map[string]string{"X-Edgefort-Groups": "g1,g2"}}},
		{"alice, another app: denied", "GET", "/api/v1/apps/a2/", map[string]string{"Authorization": "Bearer alice-token"},
			want{code: 403, reason: ReasonDenied}},
		{"bob, alice's app: denied", "GET", "/api/v1/apps/a1/", map[string]string{"Authorization": "Bearer bob-token"},
			want{code: 403, reason: ReasonDenied}},
		{"no credentials", "GET", "/api/v1/apps/a1/", nil,
			want{code: 401, reason: ReasonAnonymousRefused, www: bearerChallenge}},
		{"refused credentials", "GET", "/api/v1/apps/a1/", map[string]string{"Authorization": "Bearer forged"},
			want{code: 401, reason: "bad_token", www: bearerChallengeRejected}},
		{"wrong method", "POST", "/api/v1/apps/a1/", map[string]string{"Authorization": "Bearer alice-token"},
			want{code: 405}},
		{"anonymous route", "GET", "/public/index.html", nil,
			want{code: 200, path: "/public/index.html", header: identity("anonymous")}},
		{"anonymous route, authenticated user", "GET", "/public/x", map[string]string{"Authorization": "Bearer alice-token"},
			want{code: 403, reason: ReasonDenied}},
		{"prefix stripped", "PUT", "/s/deep/path", map[string]string{"Authorization": "Bearer alice-token"},
			want{code: 200, path: "/deep/path"}},
		{"client identity and forwarding headers stripped", "GET", "/api/v1/apps/a1/", map[string]string{
			"Authorization": "Bearer alice-token", "X-Edgefort-User": "admin", "X-Edgefort-Directory": "root", "X-Edgefort-Groups": "admins",
			"X-Edgefort-Anything": "x", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil", "X-Forwarded-Port": "1", "Forwarded": "for=6.6.6.6",
			"X-Request-Id": "client-chosen"},
			want{code: 200, header: map[string]string{"X-Edgefort-User": "alice", "X-Edgefort-Directory": "corp", "X-Edgefort-Groups": "g1,g2",
				"X-Edgefort-Anything": "", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "hub.example", "X-Forwarded-Proto": "https",
				"X-Forwarded-Port": "", "Forwarded": "for=127.0.0.1;host=hub.example;proto=https"}}},
		{"hop-by-hop headers removed", "GET", "/api/v1/apps/a1/", map[string]string{
			"Authorization": "Bearer alice-token", "Connection": "X-Client-Hop", "X-Client-Hop": "1", "Keep-Alive": "timeout=5", "X-Kept": "yes"},
			want{code: 200, header: map[string]string{"X-Client-Hop": "", "Keep-Alive": "", "X-Kept": "yes"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, nil)
			req.Host = "hub.example"
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if resp.StatusCode != tt.want.code {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.want.code)
			}
			id := resp.Header.Get(HeaderRequestID)
			if len(id) != 16 {
				t.Errorf("X-Request-Id = %q, want 16 hex digits", id)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.want.www {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.want.www)
			}
			if tt.want.code != 200 {
				checkProblem(t, body, tt.want.reason, id)
				return
			}
			var s seen
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatalf("backend answer %q: %v", body, err)
			}
			if tt.want.path != "" && s.Path != tt.want.path {
				t.Errorf("backend path %q, want %q", s.Path, tt.want.path)
			}
			for k, v := range tt.want.header {
				if got := strings.Join(s.Header.Values(k), ","); got != v {
					t.Errorf("backend header %s = %q, want %q", k, got, v)
				}
			}
			if got := s.Header.Get(HeaderRequestID); got != id {
				t.Errorf("backend X-Request-Id %q, want the response's %q", got, id)
			}
			if resp.Header.Get("X-Backend-Hop") != "" {
				t.Errorf("the backend's hop-by-hop header reached the client")
			}
		})
	}
	if strings.Contains(r.logs.String(), "alice-token") || strings.Contains(r.logs.String(), "forged") {
		t.Errorf("a credential is in the log:\n%s", r.logs)
	}
	denied := map[string]bool{}
	for _, l := range r.logs.lines("authorization denied") {
		denied[fmt.Sprint(l[logKeyUser], " ", l[logKeyRoute], " ", l["resource"])] = true
	}
	for _, want := range []string{"bob apps app/sales/a1", "alice apps app/sales/a2"} {
		if !denied[want] {
			t.Errorf("no denial line for %s in %v", want, denied)
		}
	}
	if n := counterValue(srv.m.requests.WithLabelValues("hub", "apps", "403")); n != 2 {
		t.Errorf("requests_total{route=apps,code=403} = %v, want 2", n)
	}
}

// checkProblem checks an error body: the reason id, the request id and no
// internal detail.
func checkProblem(t *testing.T, body []byte, reason, id string) {
	t.Helper()
	if reason == "" {
		return
	}
	var p problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if diff := cmp.Diff(reason, p.Reason); diff != "" || p.RequestID != id {
		t.Errorf("body %q: want reason %q and request id %q", body, reason, id)
	}
	if strings.Contains(string(body), "secret") || strings.Contains(string(body), "127.0.0.1") {
		t.Errorf("body %q carries internal detail", body)
	}
}

// TestRouteSSLVariables: a target whose SSL block names its client
// keystore through {ssl.keystore} gets the route's value, so the backend
// (requiring a client certificate) accepts it; a route that leaves the
// variable empty is refused at build, naming the route.
func TestRouteSSLVariables(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	key, cert := r.pki.issue(t, "node-client")
	must(t, r.stores.CreateStore("client", keystore.KindKeystore))
	must(t, r.stores.PutEntry("client", "c", key, []*x509.Certificate{cert}))
	engine := r.backend(t, "engine", echo())
	engine.URL = r.mtlsBackend(t, echo())
	engine.SSL.ClientAuthEnabled = true
	engine.SSL.Keystore = "{ssl.keystore}"
	cfg := routeTo(engine, time.Minute)
	cfg.VirtualHosts[0].Routes[0].SSLVars = SSLVars{Keystore: "client"}
	srv := r.start(t, cfg)
	req, _ := http.NewRequest("GET", srv.URLs()["hub"]+"/x", nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	resp, err := r.client("", false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with the route's keystore: %d, want 200", resp.StatusCode)
	}
	bare := engine
	bare.SSL.ClientAuthEnabled, bare.SSL.Keystore = false, ""
	plain := r.start(t, routeTo(bare, time.Minute))
	req, _ = http.NewRequest("GET", plain.URLs()["hub"]+"/x", nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	if resp, err = r.client("", false).Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("without a client certificate: %d, want 502 from the backend's refusal", resp.StatusCode)
	}

	cfg.VirtualHosts[0].Routes[0].SSLVars = SSLVars{}
	deps := r.deps()
	_, err = New(cfg, deps)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "clients.virtual_hosts[0].routes[0].ssl_vars" {
		t.Errorf("New with the variable empty = %v, want a FieldError for routes[0].ssl_vars", err)
	}
}
