package clientapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
)

// FuzzAuthenticateRequest drives a virtual host (the real JWT solution,
// keys from a file and a cookie, then the anonymous one) in process with
// fuzzed credentials and client headers, proxying to a real backend that
// echoes what it got. "%t" in the Authorization and Cookie values stands
// for a token: none, one signed by the configured key, one signed by
// another key, or the signed one with fuzzed bytes after it. Never a
// panic; a 2xx carries the identity of the signed claims (and then the
// request held the configured key's signature) or, on the anonymous route
// only, the anonymous one; no identity or forwarding header the client
// sent reaches the backend.
func FuzzAuthenticateRequest(f *testing.F) {
	for _, s := range []struct {
		authz, cookie, xff, user string
		kind                     uint8
		tail                     string
	}{
		{"Bearer %t", "", "", "", 1, ""},
		{"bearer %t", "", "6.6.6.6", "admin", 1, ""},
		{"Bearer %t", "", "", "admin", 2, ""},
		{"Bearer %t", "", "", "", 3, "."},
		{"Bearer %t, Bearer %t", "", "", "", 1, ""},
		{"Basic YWRtaW46YWRtaW4=", "", "", "root", 0, ""},
		{"", "edge_token=%t", "10.0.0.1, 127.0.0.1", "admin", 1, ""},
		{"", "edge_token=%t; edge_token=%t", "", "", 3, "AAAA"},
		{"Bearer  %t ", "other=1", "", "", 5, "=="},
		{"", "", "", "anonymous", 4, ""},
	} {
		f.Add(s.authz, s.cookie, s.xff, s.user, s.kind, s.tail)
	}
	r := newRig(f)
	r.authz.permit("alice app.read app/sales/a1")
	r.authz.permit("anonymous page.read space//sales")
	cfg := hubConfig(r.backend(f, "engine", echo()))
	vh := &cfg.VirtualHosts[0]
	sol, st := jwtFromFile(f, "edge_token")
	vh.Authentication = []Solution{{JWT: sol}, {Anonymous: &Anonymous{}}}
	vh.FailedAuthLimit = RateLimit{PerSecond: 1e9, Burst: 1 << 30}
	vh.Identity.Strip = []string{"X-Remote-User"}
	deps := r.deps()
	deps.Logger = slog.New(slog.DiscardHandler) // the log of every execution would pile up
	srv, err := New(cfg, deps)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.hosts[0]
	valid := jwttest.Valid(f, st)
	signature := valid[strings.LastIndex(valid, ".")+1:]
	attacker, _ := jwttest.AttackerKeys()
	forged := jwttest.Sign(f, jwt.SigningMethodRS256, attacker, map[string]any{"alg": "RS256", "kid": st.KID}, jwttest.Claims(st))
	f.Fuzz(func(t *testing.T, authz, cookie, xff, user string, kind uint8, tail string) {
		tok := map[uint8]string{1: valid, 2: forged, 3: valid + tail}[kind%4]
		path := "/api/v1/apps/a1/"
		if kind&4 != 0 {
			path = "/public/p"
		}
		req := httptest.NewRequest(http.MethodGet, "https://hub.example"+path, nil)
		req.RemoteAddr = "192.0.2.1:40000"
		set := func(name, v string) {
			if v != "" {
				req.Header[name] = []string{strings.ReplaceAll(v, "%t", tok)}
			}
		}
		set("Authorization", authz)
		set("Cookie", cookie)
		set("X-Forwarded-For", xff)
		set("Forwarded", xff)
		for _, name := range []string{"X-Edgefort-User", "X-Edgefort-Directory", "X-Edgefort-Groups", "X-Edgefort-Identity", "X-Remote-User"} {
			set(name, user)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 299 {
			return
		}
		var s seen
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatalf("%d from the backend, body %q: %v", rec.Code, rec.Body.Bytes(), err)
		}
		got := func(k string) string { return strings.Join(s.Header.Values(k), "|") }
		switch id := [3]string{got("X-Edgefort-User"), got("X-Edgefort-Directory"), got("X-Edgefort-Groups")}; id {
		case [3]string{"alice", userIssuer, "staff"}:
			if !strings.Contains(req.Header.Get("Authorization")+req.Header.Get("Cookie"), signature) {
				t.Fatalf("authenticated as alice without the configured key's signature: Authorization %q, Cookie %q", req.Header.Get("Authorization"), req.Header.Get("Cookie"))
			}
		case [3]string{"anonymous", "anonymous", ""}:
			if kind&4 == 0 {
				t.Fatalf("anonymous identity on a route that does not admit it")
			}
		default:
			t.Fatalf("backend identity %q: neither the signed claims nor the anonymous identity", id)
		}
		if v := got("X-Edgefort-Identity") + got("X-Remote-User"); v != "" {
			t.Fatalf("a client identity header reached the backend: %q", v)
		}
		if v := got("X-Forwarded-For"); v != "192.0.2.1" {
			t.Fatalf("backend X-Forwarded-For %q, want only the real peer", v)
		}
		if v := got("Forwarded"); !strings.HasPrefix(v, "for=192.0.2.1;") || strings.Contains(v, ",") {
			t.Fatalf("backend Forwarded %q, want only the real peer", v)
		}
	})
}
