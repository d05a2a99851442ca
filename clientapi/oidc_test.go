package clientapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/clientapi/oidcauth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// TestOIDCLoginThroughTheNode signs alice in through npm oidc-provider as
// a browser would: the page sends her to the provider, whose ID token is
// encrypted to the node's key pair (RSA-OAEP-256, A256GCM); the callback
// opens a node session and redirects to the page, which the backend
// serves as alice. A verification login by the signed-in user while the
// provider still encrypts to the active key is refused and keeps the
// pairs. The callback replayed is refused and opens nothing.
func TestOIDCLoginThroughTheNode(t *testing.T) {
	r := newRig(t)
	pairs, err := keystore.OpenKeyPairs(t.TempDir(), slog.New(slog.DiscardHandler))
	must(t, err)
	_, err = pairs.Generate(2048)
	must(t, err)
	raw, err := pairs.JWKS(keystore.KeyPairActive)
	must(t, err)
	var set struct{ Keys []map[string]any }
	must(t, json.Unmarshal(raw, &set))
	idp := peertest.NewOIDCProvider(t)
	must(t, r.stores.CreateStore("idp", keystore.KindTruststore))
	must(t, r.stores.PutTrusted("idp", "idp", []*x509.Certificate{idp.Cert}))

	cfg := hubConfig(r.backend(t, "engine", echo()))
	cfg.VirtualHosts[0].Authentication = []Solution{
		{Session: &session.Config{}},
		{OIDC: &oidcauth.Config{Issuer: idp.Issuer, SSL: keystore.SSL{Enabled: on(), Truststore: "idp", MinVersion: "1.2"},
			ClientID: "edge", ClientSecret: "edge-secret"}},
	}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	deps.KeyPairs = pairs
	srv, err := New(cfg, deps)
	must(t, err)
	runServer(t, srv)
	r.authz.permit("alice app.read app/sales/a1")
	// The browser reaches the node as hub.example (its certificate's
	// name) and the provider as 127.0.0.1.
	addr := strings.TrimPrefix(srv.URLs()["hub"], "https://")
	_, port, _ := net.SplitHostPort(addr)
	base := "https://hub.example:" + port
	idp.Start(t, []map[string]any{{
		"client_id": "edge", "client_secret": "edge-secret",
		"redirect_uris":                   []string{base + oidcauth.DefaultCallbackPath},
		"grant_types":                     []string{"authorization_code"},
		"response_types":                  []string{"code"},
		"jwks":                            map[string]any{"keys": set.Keys},
		"id_token_encrypted_response_alg": "RSA-OAEP-256", "id_token_encrypted_response_enc": "A256GCM",
	}}, nil)

	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	pool.AddCert(idp.Cert)
	jar, err := cookiejar.New(nil)
	must(t, err)
	d := &net.Dialer{}
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				if a == "hub.example:"+port {
					a = addr
				}
				return d.DialContext(ctx, network, a)
			}}}
	page := "/api/v1/apps/a1/?sheet=2"
	callback := peertest.OIDCLogin(t, browser, base+page, oidcauth.DefaultCallbackPath, "alice")

	get := func(u string) (*http.Response, seen) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := browser.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var s seen
		json.NewDecoder(resp.Body).Decode(&s)
		return resp, s
	}
	resp, _ := get(callback)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != page {
		t.Fatalf("callback: %s to %q, want 303 to %q", resp.Status, resp.Header.Get("Location"), page)
	}
	resp, s := get(base + page)
	if resp.StatusCode != http.StatusOK || s.Header.Get("X-Edgefort-User") != "alice" || s.Header.Get("X-Edgefort-Directory") != "oidc" {
		t.Fatalf("the page after the login: %s, user %q directory %q, want alice in oidc", resp.Status,
			s.Header.Get("X-Edgefort-User"), s.Header.Get("X-Edgefort-Directory"))
	}
	// A signed-in admin starts a verification login of a new pending
	// pair: the callback is the oidc solution's even with a session, and
	// as the provider still encrypts to the active key it is refused and
	// the pairs stay as they were; the session goes on.
	activeID := pairs.List()[0].ID
	_, err = pairs.Generate(2048)
	must(t, err)
	verify := peertest.OIDCLogin(t, browser, base+oidcauth.DefaultVerifyPath, oidcauth.DefaultCallbackPath, "alice")
	if resp, _ := get(verify); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("verification login with the provider on the old key: %s, want 401", resp.Status)
	}
	if !strings.Contains(r.logs.String(), `"reason":"`+oidcauth.ReasonVerificationFail+`"`) {
		t.Errorf("the failed verification is not audited as %s", oidcauth.ReasonVerificationFail)
	}
	if got := pairs.List(); len(got) != 2 || got[0].ID != activeID || got[0].State != keystore.KeyPairActive {
		t.Errorf("after the failed verification the pairs are %+v, want %s still active and the pending kept", got, activeID)
	}
	if resp, s := get(base + page); resp.StatusCode != http.StatusOK || s.Header.Get("X-Edgefort-User") != "alice" {
		t.Errorf("the page after the failed verification: %s as %q, want alice's session", resp.Status, s.Header.Get("X-Edgefort-User"))
	}

	// The same callback again (state, code and nonce replayed), from a
	// browser without the session: refused, no session.
	other, err := cookiejar.New(nil)
	must(t, err)
	for _, c := range jar.Cookies(mustURL(t, base+oidcauth.DefaultCallbackPath)) {
		if c.Name == oidcauth.DefaultStateCookie {
			other.SetCookies(mustURL(t, base+oidcauth.DefaultCallbackPath), []*http.Cookie{c})
		}
	}
	browser.Jar = other
	resp, _ = get(callback)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("replayed callback: %s with cookies %v, want 401 and no session", resp.Status, resp.Cookies())
	}
	if !strings.Contains(r.logs.String(), `"reason":"`+oidcauth.ReasonBadState+`"`) {
		t.Errorf("the replayed callback is not audited as %s:\n%s", oidcauth.ReasonBadState, r.logs)
	}
	if logs := r.logs.String(); strings.Contains(logs, "code=") || strings.Contains(logs, "edge-secret") {
		t.Errorf("the log carries the code or the client secret:\n%s", logs)
	}
}

func mustURL(t *testing.T, s string) *neturl.URL {
	t.Helper()
	u, err := neturl.Parse(s)
	must(t, err)
	return u
}
