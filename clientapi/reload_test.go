package clientapi

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// TestReload: an invalid configuration leaves the old one serving; a valid
// one swaps the routes of a kept virtual host under an open connection,
// stops a removed one and binds a new one.
func TestReload(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	named := func(name string) TargetEndpoint {
		return r.backend(t, name, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	}
	a, b := named("a"), named("b")
	cfg := routeTo(a, time.Minute)
	cfg.TargetEndpoints = append(cfg.TargetEndpoints, b)
	cfg.VirtualHosts = append(cfg.VirtualHosts, VirtualHost{Name: "gone", Listen: Addresses{"127.0.0.1:0"}})
	srv := r.start(t, cfg)
	urls := srv.URLs()
	client := r.client("", false)
	get := func(url string) (string, bool) {
		t.Helper()
		reused := false
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("Authorization", "Bearer alice-token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body), reused
	}
	if got, _ := get(urls["hub"] + "/"); got != "a" {
		t.Fatalf("before reload: %q, want a", got)
	}

	bad := routeTo(TargetEndpoint{Name: "x", URL: "http://127.0.0.1:1"}, time.Minute)
	bad.VirtualHosts[0].Routes[0].Target = "nowhere"
	if err := srv.Reload(bad); err == nil || !strings.Contains(err.Error(), "routes[0].target") {
		t.Fatalf("Reload(invalid) = %v, want the field named", err)
	}
	if got, reused := get(urls["hub"] + "/"); got != "a" || !reused {
		t.Fatalf("after an invalid reload: %q (reused %v), want a on the same connection", got, reused)
	}

	next := routeTo(b, time.Minute)
	next.TargetEndpoints = append(next.TargetEndpoints, a)
	next.VirtualHosts = append(next.VirtualHosts, VirtualHost{Name: "new", Listen: Addresses{"127.0.0.1:0"}})
	addTokensOnReload(t, srv, next)
	if got, reused := get(urls["hub"] + "/"); got != "b" || !reused {
		t.Errorf("after reload: %q (reused %v), want b on the same connection", got, reused)
	}
	after := srv.URLs()
	if _, ok := after["gone"]; ok {
		t.Errorf("removed virtual host still listed: %v", after)
	}
	if _, err := client.Get(urls["gone"] + "/healthz"); err == nil {
		t.Errorf("removed virtual host still answers")
	}
	if got, _ := get(after["new"] + "/healthz"); got != "ok\n" {
		t.Errorf("new virtual host /healthz = %q", got)
	}
}

// addTokensOnReload reloads cfg with the test token solution in each
// chain, as start does.
func addTokensOnReload(t *testing.T, srv *Server, cfg Config) {
	t.Helper()
	testHook = addTokens
	t.Cleanup(func() { testHook = nil })
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}
