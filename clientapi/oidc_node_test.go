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
	"net/url"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/clientapi/oidcauth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// oidcNode is the node over real TLS with one OIDC solution per client id
// of npm oidc-provider, each under /.edgefort/oidc-<id>/, a session
// solution, and the apps route alice may read.
type oidcNode struct {
	r     *rig
	srv   *Server
	pairs *keystore.KeyPairs
	idp   *peertest.OIDCProviderPeer
	base  string // https://hub.example:port, as browsers reach the node
	addr  string // the real loopback address
	pool  *x509.CertPool
}

const oidcNodePage = "/api/v1/apps/a1/?sheet=2"

func oidcPath(id, what string) string { return "/.edgefort/oidc-" + id + "/" + what }

// newOIDCNode builds the node for client ids; the provider is bound but
// not started (see start).
func newOIDCNode(t *testing.T, pairs *keystore.KeyPairs, ids ...string) *oidcNode {
	t.Helper()
	n := &oidcNode{r: newRig(t), pairs: pairs, idp: peertest.NewOIDCProvider(t)}
	must(t, n.r.stores.CreateStore("idp", keystore.KindTruststore))
	must(t, n.r.stores.PutTrusted("idp", "idp", []*x509.Certificate{n.idp.Cert}))
	cfg := hubConfig(n.r.backend(t, "engine", echo()))
	cfg.VirtualHosts[0].Authentication = []Solution{{Session: &session.Config{}}}
	for _, id := range ids {
		cfg.VirtualHosts[0].Authentication = append(cfg.VirtualHosts[0].Authentication, Solution{OIDC: &oidcauth.Config{
			Name: id, Issuer: n.idp.Issuer, SSL: keystore.SSL{Enabled: on(), Truststore: "idp", MinVersion: "1.2"},
			ClientID: id, ClientSecret: "secret-" + id, CallbackPath: oidcPath(id, "callback"), LoginPath: oidcPath(id, "login"),
			VerifyPath: oidcPath(id, "verify"), JWKSPath: oidcPath(id, "jwks.json"),
		}})
	}
	deps := n.r.deps()
	deps.Store = testkit.OpenStore(t, "")
	deps.KeyPairs = pairs
	var err error
	n.srv, err = New(cfg, deps)
	must(t, err)
	runServer(t, n.srv)
	n.r.authz.permit("alice app.read app/sales/a1")
	n.addr = strings.TrimPrefix(n.srv.URLs()["hub"], "https://")
	_, port, _ := net.SplitHostPort(n.addr)
	n.base = "https://hub.example:" + port
	n.pool = x509.NewCertPool()
	n.pool.AddCert(n.r.pki.cert)
	n.pool.AddCert(n.idp.Cert)
	return n
}

// client is oidc-provider metadata for id, its ID tokens encrypted to
// pair which ("active" or "pending") with RSA-OAEP-256 and A256GCM.
func (n *oidcNode) client(t *testing.T, id, which string) map[string]any {
	t.Helper()
	raw, err := n.pairs.JWKS(which)
	must(t, err)
	var set struct{ Keys []map[string]any }
	must(t, json.Unmarshal(raw, &set))
	delete(set.Keys[0], "alg")
	return map[string]any{
		"client_id": id, "client_secret": "secret-" + id,
		"redirect_uris": []string{n.base + oidcPath(id, "callback")},
		"grant_types":   []string{"authorization_code"}, "response_types": []string{"code"},
		"jwks":                            map[string]any{"keys": set.Keys[:1]},
		"id_token_encrypted_response_alg": "RSA-OAEP-256", "id_token_encrypted_response_enc": "A256GCM",
	}
}

// browser keeps cookies, follows no redirect, trusts the node and the
// provider, and reaches the node as hub.example.
func (n *oidcNode) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	must(t, err)
	d := &net.Dialer{}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if a == strings.TrimPrefix(n.base, "https://") {
				a = n.addr
			}
			return d.DialContext(ctx, network, a)
		}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login signs alice in through id's login start (or what, e.g. "verify")
// and answers the node's response to the callback, with its body.
func (n *oidcNode) login(t *testing.T, b *http.Client, id, what string) (*http.Response, string) {
	t.Helper()
	start := n.base + oidcPath(id, what)
	if what == "login" {
		start += "?" + url.Values{"return_to": {oidcNodePage}}.Encode()
	}
	return samlDo(t, b, "GET", peertest.OIDCLogin(t, b, start, oidcPath(id, "callback"), "alice"), nil, "Accept", "text/html")
}

// page reports who the backend saw on the app page, "" when the node
// refused the request.
func (n *oidcNode) page(t *testing.T, b *http.Client) string {
	t.Helper()
	resp, body := samlDo(t, b, "GET", n.base+oidcNodePage, nil)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var s seen
	must(t, json.Unmarshal([]byte(body), &s))
	return s.Header.Get(DefaultUserIDHeader)
}

func oidcPairs(t *testing.T) *keystore.KeyPairs {
	t.Helper()
	pairs, err := keystore.OpenKeyPairs(t.TempDir(), slog.New(slog.DiscardHandler))
	must(t, err)
	_, err = pairs.Generate(2048)
	must(t, err)
	return pairs
}

// The provider answers a login with the ID token of an earlier one
// (captured and replayed: oidc-provider returns the first token it
// issued to the client for every later code): its nonce is not the one
// this login sent, so the callback is refused (oidc_bad_nonce, audited)
// and opens no session, while the first login's session goes on.
func TestOIDCReplayedNonce(t *testing.T) {
	n := newOIDCNode(t, oidcPairs(t), "replay")
	n.idp.Replay = []string{"replay"}
	n.idp.Start(t, []map[string]any{n.client(t, "replay", keystore.KeyPairActive)}, nil)

	first := n.browser(t)
	resp, body := n.login(t, first, "replay", "login")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != oidcNodePage {
		t.Fatalf("first login: %s to %q %s, want 303 to the page", resp.Status, resp.Header.Get("Location"), body)
	}
	if got := n.page(t, first); got != "alice" {
		t.Fatalf("the page after the first login shows %q, want alice", got)
	}
	second := n.browser(t)
	resp, body = n.login(t, second, "replay", "login")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, oidcauth.ReasonBadNonce) || len(resp.Cookies()) != 0 {
		t.Errorf("login answered with the earlier token: %s %s cookies %v, want 401 %s and no cookie", resp.Status, body, resp.Cookies(), oidcauth.ReasonBadNonce)
	}
	if got := n.page(t, second); got != "" {
		t.Errorf("the second browser reaches the page as %q, want no session", got)
	}
	if got := len(n.srv.Sessions().List()); got != 1 {
		t.Errorf("%d sessions, want the first login's only", got)
	}
	if !strings.Contains(n.r.logs.String(), `"reason":"`+oidcauth.ReasonBadNonce+`"`) {
		t.Errorf("the refusal is not audited as %s", oidcauth.ReasonBadNonce)
	}
	if got := n.page(t, first); got != "alice" {
		t.Errorf("the first session after the refusal shows %q, want alice", got)
	}
}

// Rotation through the node (edgefort keys rotate makes the pending
// RSA-4096 pair): client "old" is the provider encrypting to the active
// pair, "new" the provider once its admin gave it the pending public key.
// A verification login through "old" fails and keeps the old pair; one
// through "new" promotes the pending pair; logins work throughout, the
// sessions opened before go on, and afterwards a token encrypted to the
// retired pair is refused.
func TestOIDCRotationThroughTheNode(t *testing.T) {
	pairs := oidcPairs(t)
	oldKID := pairs.List()[0].ID
	pending, err := pairs.Generate(4096)
	must(t, err)
	n := newOIDCNode(t, pairs, "old", "new")
	n.idp.Start(t, []map[string]any{n.client(t, "old", keystore.KeyPairActive), n.client(t, "new", keystore.KeyPairPending)}, nil)
	states := func() map[string]string {
		out := map[string]string{}
		for _, p := range pairs.List() {
			out[p.State] = p.ID
		}
		return out
	}

	before := n.browser(t)
	if resp, body := n.login(t, before, "old", "login"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login before the rotation: %s %s", resp.Status, body)
	}
	admin := n.browser(t)
	if resp, body := n.login(t, admin, "old", "verify"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, oidcauth.ReasonVerificationFail) {
		t.Errorf("verification with the provider on the old key: %s %s, want 401 %s", resp.Status, body, oidcauth.ReasonVerificationFail)
	}
	if got := states(); got[keystore.KeyPairActive] != oldKID || got[keystore.KeyPairPending] != pending.ID {
		t.Fatalf("after the failed verification the pairs are %v, want %s active and %s pending", got, oldKID, pending.ID)
	}
	during := n.browser(t)
	if resp, body := n.login(t, during, "old", "login"); resp.StatusCode != http.StatusSeeOther || n.page(t, during) != "alice" {
		t.Errorf("login during the rotation: %s %s, want alice signed in", resp.Status, body)
	}
	if resp, body := n.login(t, admin, "new", "verify"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verification with the provider on the pending key: %s %s, want 303", resp.Status, body)
	}
	if got := states(); got[keystore.KeyPairActive] != pending.ID || got[keystore.KeyPairPending] != "" {
		t.Fatalf("after the verification the pairs are %v, want %s active and none pending", got, pending.ID)
	}
	after := n.browser(t)
	if resp, body := n.login(t, after, "new", "login"); resp.StatusCode != http.StatusSeeOther || n.page(t, after) != "alice" {
		t.Errorf("login with the new pair: %s %s, want alice signed in", resp.Status, body)
	}
	for name, b := range map[string]*http.Client{"before": before, "during": during, "admin": admin} {
		if got := n.page(t, b); got != "alice" {
			t.Errorf("the session opened %s the rotation shows %q, want alice", name, got)
		}
	}
	if resp, body := n.login(t, n.browser(t), "old", "login"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, oidcauth.ReasonDecrypt) {
		t.Errorf("a token encrypted to the retired pair: %s %s, want 401 %s", resp.Status, body, oidcauth.ReasonDecrypt)
	}
}
