package oidcauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/keystore"
)

// otherJWK is an encryption key the node does not hold.
func otherJWK(t *testing.T) map[string]any {
	t.Helper()
	return encJWK(t, keyPairs(t), keystore.KeyPairActive)
}

// TestLogin signs alice in through oidc-provider with ID tokens in every
// form the provider sends: encrypted to the node's key with both
// algorithm pairs (the login succeeds, and lands on the page it started
// from), and the refused ones: encrypted to another key, a bad inner
// signature, a plain signed token where encryption is required.
func TestLogin(t *testing.T) {
	n := newNode(t)
	pairs := keyPairs(t)
	active := encJWK(t, pairs, keystore.KeyPairActive)
	clients := []map[string]any{
		client("oaep256", n.srv.URL, active, "RSA-OAEP-256", "A256GCM"),
		client("oaep", n.srv.URL, active, "RSA-OAEP", "A128CBC-HS256"),
		client("otherkey", n.srv.URL, otherJWK(t), "RSA-OAEP-256", "A256GCM"),
		client("tamper", n.srv.URL, active, "", ""),
		client("plain", n.srv.URL, nil, "", ""),
		client("plainok", n.srv.URL, nil, "", ""),
		client("pkjwt", n.srv.URL, active, "RSA-OAEP-256", "A256GCM"),
	}
	clients[1]["token_endpoint_auth_method"] = "client_secret_post"
	clientKey, clientJWK := signingKey(t)
	clients[6]["token_endpoint_auth_method"] = "private_key_jwt"
	clients[6]["jwks"].(map[string]any)["keys"] = []any{active, clientJWK}
	p := startProvider(t, clients, []string{"tamper"})
	stores := p.stores(t)
	putKey(t, stores, "client", clientKey)
	deps := Deps{Keystores: stores, KeyPairs: pairs, Logger: slog.New(slog.DiscardHandler)}
	for _, c := range clients {
		cfg := baseConfig(p)
		switch c["client_id"] {
		case "oaep":
			cfg.TokenAuth = "client_secret_post"
		case "plainok":
			cfg.RequireEncryption = new(bool)
		case "pkjwt":
			cfg.TokenAuth, cfg.PrivateKeyJWT = "private_key_jwt", KeyRef{Keystore: "client"}
		}
		n.add(t, c["client_id"].(string), cfg, deps)
	}
	tests := []struct {
		client string
		want   callbackAnswer
	}{
		{"oaep256", callbackAnswer{Outcome: "authenticated", User: "alice", Redirect: "/app/page?x=1"}},
		{"oaep", callbackAnswer{Outcome: "authenticated", User: "alice", Redirect: "/app/page?x=1"}},
		{"plainok", callbackAnswer{Outcome: "authenticated", User: "alice", Redirect: "/app/page?x=1"}},
		{"pkjwt", callbackAnswer{Outcome: "authenticated", User: "alice", Redirect: "/app/page?x=1"}},
		{"otherkey", callbackAnswer{Outcome: "refused", Reason: ReasonDecrypt}},
		{"tamper", callbackAnswer{Outcome: "refused", Reason: "bad_signature"}},
		{"plain", callbackAnswer{Outcome: "refused", Reason: ReasonNotEncrypted}},
	}
	for _, tc := range tests {
		t.Run(tc.client, func(t *testing.T) {
			b := newBrowser(t, p)
			cb := b.login(n.url(tc.client, "login?return_to=%2Fapp%2Fpage%3Fx%3D1"), "alice")
			if diff := cmp.Diff(tc.want, b.callback(cb)); diff != "" {
				t.Errorf("callback (-want +got):\n%s", diff)
			}
			// The state is single use: the same callback again (a replayed
			// code, state and nonce) is refused.
			if got := b.callback(cb); got.Reason != ReasonBadState {
				t.Errorf("replayed callback: %+v, want %s", got, ReasonBadState)
			}
		})
	}
	t.Run("other browser", func(t *testing.T) {
		cb := newBrowser(t, p).login(n.url("oaep256", "login"), "alice")
		if got := newBrowser(t, p).callback(cb); got.Reason != ReasonBadState {
			t.Errorf("callback in another browser: %+v, want %s", got, ReasonBadState)
		}
	})
}

// signingKey is a P-256 key for private_key_jwt and its public JWK.
func signingKey(t *testing.T) (*ecdsa.PrivateKey, map[string]any) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: key.Public(), Use: "sig", Algorithm: "ES256"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp) // the kid the assertion names
	b, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	var jwk map[string]any
	if err := json.Unmarshal(b, &jwk); err != nil {
		t.Fatal(err)
	}
	return key, jwk
}

// putKey stores key with a self-signed certificate in a new keystore.
func putKey(t *testing.T, m *keystore.Manager, store string, key *ecdsa.PrivateKey) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateStore(store, keystore.KindKeystore); err != nil {
		t.Fatal(err)
	}
	if err := m.PutEntry(store, "client", key, []*x509.Certificate{cert}); err != nil {
		t.Fatal(err)
	}
}
