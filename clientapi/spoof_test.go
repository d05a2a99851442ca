package clientapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
)

// spoofMarker is in every value a client sends to pose as someone: no
// header the backend receives may hold it.
const spoofMarker = "spoofed-by-client"

// TestClientCannotSpoofIdentityBySpelling sends identity and forwarding
// headers under every spelling a client controls (case, underscores for
// dashes, duplicates, both protocols) and the hop-by-hop trick of listing
// the node's own headers in Connection: the backend sees the node's
// values only.
func TestClientCannotSpoofIdentityBySpelling(t *testing.T) {
	r := newRig(t)
	backend := &counting{h: echo()}
	srv := r.start(t, hubConfig(r.backend(t, "engine", backend)))
	r.authz.permit("alice app.read app/sales/a1")
	base := srv.URLs()["hub"]
	spellings := []string{
		"X-Edgefort-User", "x-edgefort-user", "X-EDGEFORT-USER", "X_Edgefort_User", "x_edgefort_user", "X-Edgefort_User",
		"X_Edgefort_Groups", "X_Edgefort_Directory", "X_Edgefort_Anonymous", "X_Edgefort_Identity", "X_EDGEFORT_ANYTHING",
		"X_Forwarded_For", "x_forwarded_host", "X-Forwarded_Proto", "X_Forwarded_Port", "Forwarded",
	}
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", base+"/api/v1/apps/a1/", nil)
		req.Host = "hub.example"
		req.Header.Set("Authorization", "Bearer alice-token")
		for _, k := range spellings {
			// Set in the map directly: the client sends the key as written
			// (HTTP/2 lower-cases it), twice.
			req.Header[k] = []string{spoofMarker, spoofMarker + "-2"}
		}
		if !h2 {
			req.Header["Connection"] = []string{"X-Edgefort-User, X-Edgefort-Groups, X-Forwarded-For, Forwarded, X-Request-Id"}
		}
		client := r.client("", h2)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		client.CloseIdleConnections()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("h2=%v: status %d %s", h2, resp.StatusCode, body)
		}
		if strings.Contains(string(body), spoofMarker) {
			t.Errorf("h2=%v: a client value reached the backend: %s", h2, body)
		}
		for _, want := range []string{`"X-Edgefort-User":["alice"]`, `"X-Edgefort-Groups":["g1,g2"]`, `"X-Forwarded-For":["127.0.0.1"]`, `"Forwarded":["for=127.0.0.1`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("h2=%v: the backend did not get %s: %s", h2, want, body)
			}
		}
	}
}

// identitySolution authenticates "Bearer <key>" as the identity under key.
type identitySolution map[string]auth.Identity

func (identitySolution) Kind() string { return "jwt" }
func (identitySolution) Name() string { return "identities" }

func (s identitySolution) Authenticate(r *http.Request) auth.Result {
	id, ok := s[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	return auth.Result{Outcome: auth.Authenticated, Identity: id}
}

// TestIdentityValuesThatCannotReachABackend: a solution's identity with a
// CR/LF or another control character, invalid UTF-8, an oversize value,
// or a group with a comma (which would forge a second group in the
// comma-joined groups header) is refused with 401 and logged without the
// value; the backend never sees the request. A sane identity passes.
func TestIdentityValuesThatCannotReachABackend(t *testing.T) {
	r := newRig(t)
	backend := &counting{h: echo()}
	ids := identitySolution{
		"ok":       {UserID: "alice", Directory: "corp", Groups: []string{"Sales EMEA", "ünïcode"}},
		"crlf":     {UserID: "alice\r\nX-Edgefort-Groups: admins", Directory: "corp"},
		"lf-dir":   {UserID: "alice", Directory: "corp\nadmins"},
		"nul":      {UserID: "alice\x00", Directory: "corp"},
		"del":      {UserID: "alice\x7f", Directory: "corp"},
		"utf8":     {UserID: "alice\xff", Directory: "corp"},
		"long":     {UserID: strings.Repeat("a", 1024+1), Directory: "corp"},
		"comma":    {UserID: "alice", Directory: "corp", Groups: []string{"staff,admins"}},
		"group-lf": {UserID: "alice", Directory: "corp", Groups: []string{"staff\r\nadmins"}},
		"many":     {UserID: "alice", Directory: "corp", Groups: strings.Split(strings.Repeat("group-with-a-long-name,", 400), ",")},
	}
	srv, err := New(hubConfig(r.backend(t, "engine", backend)), r.deps())
	must(t, err)
	for _, h := range srv.hosts {
		h.chain.solutions = append([]auth.Solution{ids}, h.chain.solutions...)
	}
	runServer(t, srv)
	for _, u := range []string{"alice", "alice\r\nX-Edgefort-Groups: admins"} {
		r.authz.permit(u + " app.read app/sales/a1")
	}
	base := srv.URLs()["hub"]
	for key := range ids {
		call := hubCall{path: "/api/v1/apps/a1/", header: http.Header{"Authorization": {"Bearer " + key}}}
		before := backend.n.Load()
		code, reason, seen := call.do(t, r, base)
		if key == "ok" {
			if code != http.StatusOK || seen.Header.Get("X-Edgefort-Groups") != "Sales EMEA,ünïcode" {
				t.Errorf("%s: %d %s, groups %q", key, code, reason, seen.Header.Get("X-Edgefort-Groups"))
			}
			continue
		}
		if code != http.StatusUnauthorized || reason != "identity_not_representable" {
			t.Errorf("%s: %d %q, want 401 %s", key, code, reason, "identity_not_representable")
		}
		if backend.n.Load() != before {
			t.Errorf("%s: the request reached the backend", key)
		}
	}
	logs := r.logs.String()
	for _, leak := range []string{"admins", strings.Repeat("a", 1024)} {
		if strings.Contains(logs, leak) {
			t.Errorf("the log holds a refused identity value %q", leak)
		}
	}
	if n := strings.Count(logs, "identity_not_representable"); n < len(ids)-1 {
		t.Errorf("%d refusals logged, want %d", n, len(ids)-1)
	}
}

// TestUserCredentialsStayAtTheNode: the user's bearer token and the JWT
// cookie the node authenticated, like the session cookie, never reach the
// backend (which could replay them at the node or the cloud); the other
// cookies and a non-Bearer Authorization do.
func TestUserCredentialsStayAtTheNode(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	r.authz.permit("anonymous app.read app/sales/a1")
	target, _ := r.countingBackend(t)
	cfg := routeTo(target, time.Minute)
	vh := &cfg.VirtualHosts[0]
	vh.Routes[0].Anonymous = true
	sol, st := jwtFromFile(t, "edge_token")
	vh.Authentication = []Solution{{JWT: sol}, {Anonymous: &Anonymous{}}}
	srv, err := New(cfg, r.deps())
	must(t, err)
	runServer(t, srv)
	url := srv.URLs()["hub"] + "/x"
	client := r.client("", false)
	valid := jwttest.Valid(t, st)
	for _, tt := range []struct {
		name   string
		apply  func(*http.Request)
		user   string
		auth   string
		cookie string
	}{
		{"bearer", func(q *http.Request) { q.Header.Set("Authorization", "Bearer "+valid); q.Header.Set("Cookie", "app=1") }, "alice", "", "app=1"},
		{"bearer, any case", func(q *http.Request) { q.Header.Set("Authorization", "bEaReR "+valid) }, "alice", "", ""},
		{"cookie", func(q *http.Request) { q.Header.Set("Cookie", "app=1; edge_token="+valid+"; b=2") }, "alice", "", "app=1; b=2"},
		{"cookie, spaced name", func(q *http.Request) { q.Header.Set("Cookie", "edge_token ="+valid+"; b=2") }, "alice", "", "b=2"},
		{"basic passes", func(q *http.Request) { q.Header.Set("Authorization", "Basic YTpi") }, "anonymous", "Basic YTpi", ""},
		{"basic, then bearer", func(q *http.Request) { q.Header["Authorization"] = []string{"Basic YTpi", "Bearer " + valid} }, "alice", "Basic YTpi", ""},
	} {
		code, _, body := get(t, client, url, tt.apply)
		if code != http.StatusOK {
			t.Errorf("%s: %d %s", tt.name, code, body)
			continue
		}
		var s seen
		must(t, json.Unmarshal(body, &s))
		if strings.Contains(string(body), valid[strings.LastIndex(valid, ".")+1:]) {
			t.Errorf("%s: the user's token reached the backend: %s", tt.name, body)
		}
		got := []string{s.Header.Get("X-Edgefort-User"), s.Header.Get("Authorization"), s.Header.Get("Cookie")}
		if diff := cmp.Diff([]string{tt.user, tt.auth, tt.cookie}, got); diff != "" {
			t.Errorf("%s: user, Authorization, Cookie at the backend (-want +got):\n%s", tt.name, diff)
		}
	}
}
