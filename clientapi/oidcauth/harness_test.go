package oidcauth

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path"
	"sync"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/keystore"
)

// testProvider is npm oidc-provider on a loopback TLS socket.
type testProvider struct{ *peertest.OIDCProviderPeer }

func startProvider(t *testing.T, clients []map[string]any, tamper []string) *testProvider {
	t.Helper()
	return &testProvider{peertest.OIDCProvider(t, clients, tamper)}
}

// stores trusts the provider's certificate in truststore "idp".
func (p *testProvider) stores(t *testing.T) *keystore.Manager {
	t.Helper()
	m, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateStore("idp", keystore.KindTruststore); err != nil {
		t.Fatal(err)
	}
	if err := m.PutTrusted("idp", "server", []*x509.Certificate{p.Cert}); err != nil {
		t.Fatal(err)
	}
	return m
}

// encJWK is the public key of pair which ("active" or "pending") as a
// client's encryption key for the provider.
func encJWK(t *testing.T, k *keystore.KeyPairs, which string) map[string]any {
	t.Helper()
	b, err := k.JWKS(which)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	jwk := set.Keys[0]
	delete(jwk, "alg") // the client's id_token_encrypted_response_alg decides
	return jwk
}

func keyPairs(t *testing.T) *keystore.KeyPairs {
	t.Helper()
	k, err := keystore.OpenKeyPairs(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Generate(2048); err != nil {
		t.Fatal(err)
	}
	return k
}

// client is oidc-provider client metadata for id, with the node's
// callback under nodeURL.
func client(id, nodeURL string, jwk map[string]any, alg, enc string) map[string]any {
	c := map[string]any{
		"client_id": id, "client_secret": "secret-" + id,
		"redirect_uris": []string{nodeURL + "/" + id + "/callback"},
		"grant_types":   []string{"authorization_code"}, "response_types": []string{"code"},
	}
	if jwk != nil {
		c["jwks"] = map[string]any{"keys": []any{jwk}}
	}
	if alg != "" {
		c["id_token_encrypted_response_alg"] = alg
		c["id_token_encrypted_response_enc"] = enc
	}
	return c
}

// node is the relying party under test: solutions mounted under /<client
// id>/ on one loopback HTTP server, each answering its callback with the
// result as JSON.
type node struct {
	srv  *httptest.Server
	mu   sync.Mutex
	mux  *http.ServeMux
	sols map[string]*Solution
}

type callbackAnswer struct {
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason"`
	User     string `json:"user"`
	Redirect string `json:"redirect"`
}

func newNode(t *testing.T) *node {
	n := &node{mux: http.NewServeMux(), sols: map[string]*Solution{}}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		mux := n.mux
		n.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

// add builds the solution for client id with cfg's provider settings.
func (n *node) add(t *testing.T, id string, cfg Config, deps Deps) *Solution {
	t.Helper()
	cfg.ClientID, cfg.ClientSecret = id, "secret-"+id
	cfg.CallbackPath, cfg.LoginPath = "/"+id+"/callback", "/"+id+"/login"
	cfg.VerifyPath, cfg.JWKSPath = "/"+id+"/verify", "/"+id+"/jwks.json"
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range s.Endpoints() {
		if e.Handler != nil {
			n.mux.Handle(e.Pattern, e.Handler)
			continue
		}
		login := e.Login
		n.mux.HandleFunc(e.Pattern, func(w http.ResponseWriter, r *http.Request) {
			res := login(w, r)
			if res.Err != nil {
				t.Logf("%s callback: %s: %v", id, res.Reason, res.Err)
			}
			json.NewEncoder(w).Encode(callbackAnswer{Outcome: res.Outcome.String(), Reason: res.Reason,
				User: res.Identity.UserID, Redirect: res.Redirect})
		})
	}
	n.sols[id] = s
	return s
}

// browser follows the user's steps: redirects, the provider's login and
// consent forms; it keeps cookies.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T, p *testProvider) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.Cert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, c: &http.Client{Jar: jar, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// login starts at start (a node URL) and signs in as user at the
// provider; it returns the callback URL the provider sends the browser
// back to, not yet requested.
func (b *browser) login(start, user string) string {
	b.t.Helper()
	u, err := url.Parse(start)
	if err != nil {
		b.t.Fatal(err)
	}
	return peertest.OIDCLogin(b.t, b.c, start, path.Dir(u.Path)+"/callback", user)
}

// callback requests the callback URL and decodes the node's answer.
func (b *browser) callback(u string) callbackAnswer {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a callbackAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		b.t.Fatalf("callback %s: %s: %v", u, resp.Status, err)
	}
	return a
}

func baseConfig(p *testProvider) Config {
	return Config{Issuer: p.Issuer, SSL: keystore.SSL{Truststore: "idp"}}
}

func (n *node) url(id, path string) string { return fmt.Sprintf("%s/%s/%s", n.srv.URL, id, path) }
