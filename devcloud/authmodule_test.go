package devcloud

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// startModule runs an auth module with a dev-CA certificate; it returns
// the module and a client trusting the CA that follows no redirect.
func startModule(t *testing.T, log *slog.Logger) (*AuthModule, *http.Client) {
	t.Helper()
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	key, leaf, err := ca.Issue("dev-auth-module", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	m, err := NewAuthModule(AuthModuleOptions{Certificate: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}, RootCAs: pool, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TestAuthModuleRefusals: before the node is known every login answers
// 503; then a return_to outside the node's virtual hosts or a bad user
// name is 400 before the node is asked, and a node that cannot be reached
// is 502. (The flows with the real node: devstack's TestDevStackTicketLogin
// and TestDevStackPortalSession.)
func TestAuthModuleRefusals(t *testing.T) {
	m, c := startModule(t, nil)
	hub := "https://127.0.0.1:8443"
	login := func(user, back string) string {
		return m.URL() + "/login?" + url.Values{"user": {user}, "return_to": {back}}.Encode()
	}
	do := func(method, u, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct{ method, url, body string }{
		{"GET", login("alice", hub+"/"), ""},
		{"POST", m.URL() + "/portal/login", "user=alice"},
	} {
		if code, body := do(tc.method, tc.url, tc.body); code != http.StatusServiceUnavailable {
			t.Errorf("%s %s before SetNode: %d %q, want 503", tc.method, tc.url, code, body)
		}
	}

	// A node address nothing listens on: bound, then closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "https://" + ln.Addr().String()
	ln.Close()
	m.SetNode(gone, []string{hub})
	tests := []struct {
		name, method, url, body string
		want                    int
	}{
		{"return_to on another host", "GET", login("alice", "https://evil.example/"), "", 400},
		{"return_to on another port", "GET", login("alice", "https://127.0.0.1:9/"), "", 400},
		{"return_to with user info", "GET", login("alice", "https://x@127.0.0.1:8443/"), "", 400},
		{"return_to a path", "GET", login("alice", "/apps"), "", 400},
		{"user with a slash", "GET", login("a/b", hub+"/"), "", 400},
		{"user too long", "GET", login(strings.Repeat("a", 65), hub+"/"), "", 400},
		{"portal user empty", "POST", m.URL() + "/portal/login", "user=", 400},
		{"portal logout without the cookie", "POST", m.URL() + "/portal/logout", "", 401},
		{"node unreachable", "GET", login("alice", hub+"/apps"), "", 502},
		{"portal, node unreachable", "POST", m.URL() + "/portal/login", "user=alice", 502},
	}
	for _, tc := range tests {
		if code, body := do(tc.method, tc.url, tc.body); code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		}
	}
	if code, body := do("GET", m.URL()+"/login?return_to="+url.QueryEscape(hub+"/apps"), ""); code != 200 || !strings.Contains(body, `value="https://127.0.0.1:8443/apps"`) {
		t.Errorf("the login form: %d %q, want the form carrying return_to", code, body)
	}
}
