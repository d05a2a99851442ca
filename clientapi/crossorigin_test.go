package clientapi

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/testkit"
)

// originCase is one request authenticated by a cookie, and whether a page
// of another origin sent it.
type originCase struct {
	name   string
	method string
	kv     []string
	want   int
}

// sendH1 sends method url with the header pairs kv over HTTP/1.1 (an
// Upgrade header does not exist in HTTP/2) and returns the status and
// body.
func sendH1(t *testing.T, client *http.Client, method, url string, kv ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	must(t, err)
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	resp, err := client.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// websocketHeaders are a browser's WebSocket handshake headers.
var websocketHeaders = []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}

// TestCookieWebSocketFromAnotherOrigin: a browser opens a WebSocket with
// the cookies of its target whichever page asks, and cannot add the CSRF
// header, so the node's session cookie authenticates an upgrade only from
// the virtual host's own origin (or from a client that is no browser):
// no cross-site WebSocket hijacking, from another site or a sibling
// subdomain.
func TestCookieWebSocketFromAnotherOrigin(t *testing.T) {
	s := newSessionRig(t, session.Config{})
	token, _, _ := s.login(t, "hub", "alice")
	url := s.urls["hub"] + "/app/ws"
	own := strings.TrimSuffix(s.urls["hub"], "/")
	client := s.client("", false)
	defer client.CloseIdleConnections()
	for _, tt := range []originCase{
		{"other site", "GET", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"sibling subdomain", "GET", []string{"Origin", "https://evil.hub.example", "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"null origin", "GET", []string{"Origin", "null"}, http.StatusForbidden},
		{"cross-site fetch metadata", "GET", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"own origin", "GET", []string{"Origin", own, "Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"no browser", "GET", nil, http.StatusOK},
	} {
		kv := append([]string{"Cookie", cookie("hub", token)}, websocketHeaders...)
		code, body := sendH1(t, client, tt.method, url, append(kv, tt.kv...)...)
		if code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
		if code == http.StatusForbidden && !strings.Contains(body, `"reason":"csrf"`) {
			t.Errorf("%s: body %s, want reason csrf", tt.name, body)
		}
	}
	// A plain page load from a link on another site stays allowed (the
	// cookie is SameSite=Lax for that).
	if code, body := sendH1(t, client, "GET", url, "Cookie", cookie("hub", token), "Sec-Fetch-Site", "cross-site"); code != http.StatusOK {
		t.Errorf("navigation from another site: %d %s, want 200", code, body)
	}
}

// TestPortalCookieFromAnotherOrigin: the session-module cookie is the
// portal's, with the portal's SameSite, and no CSRF token goes with it:
// a state-changing request or a WebSocket it authenticates must come
// from the virtual host's own origin (or from no browser).
func TestPortalCookieFromAnotherOrigin(t *testing.T) {
	r := newRig(t)
	api, module, _ := r.authAPI(t, time.Now)
	cfg := hubConfig(r.backend(t, "engine", echo()))
	cfg.VirtualHosts[0].Routes = append(cfg.VirtualHosts[0].Routes,
		Route{Name: "write", Match: "/w/", Target: "engine", Action: "app.read", Resource: Resource{Type: "app", ID: "a1", Space: "sales"}})
	cfg.VirtualHosts[0].Authentication = []Solution{{SessionModule: &authapi.SessionModuleConfig{Cookie: "portal"}}}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	deps.AuthAPI = api
	srv, err := New(cfg, deps)
	must(t, err)
	runServer(t, srv)
	r.authz.permit("alice app.read app/sales/a1")
	var sess authapi.SessionResponse
	post(t, module, "https://"+api.Addr()+"/v1/sessions", authapi.SessionRequest{UserRequest: authapi.UserRequest{UserID: "alice", UserDirectory: "corp", VirtualHost: "hub"}}, &sess)
	base := srv.URLs()["hub"]
	client := r.client("", false)
	defer client.CloseIdleConnections()
	c := []string{"Cookie", "portal=" + sess.SessionID}
	for _, tt := range []originCase{
		{"POST from another site", "POST", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"DELETE from a sibling subdomain", "DELETE", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"WebSocket from another site", "GET", append([]string{"Origin", "https://evil.example"}, websocketHeaders...), http.StatusForbidden},
		{"POST from the own origin", "POST", []string{"Origin", strings.TrimSuffix(base, "/"), "Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"POST from no browser", "POST", nil, http.StatusOK},
		{"GET from a link on another site", "GET", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusOK},
	} {
		code, body := sendH1(t, client, tt.method, base+"/w/x", append(c, tt.kv...)...)
		if code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
}
