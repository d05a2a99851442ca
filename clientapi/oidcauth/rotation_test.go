package oidcauth

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"

	"github.com/edgefort/edgefort/keystore"
)

// TestRotationByVerificationLogin rotates the node's key pair against
// oidc-provider: a pending RSA-4096 pair is promoted only by a
// verification login whose ID token is encrypted to it. While the
// provider still encrypts to the old key the verification fails and the
// old pair stays active; logins work with the active pair throughout.
// Client "old" is the provider encrypting to the active pair, client
// "new" the provider once its admin gave it the pending public key.
func TestRotationByVerificationLogin(t *testing.T) {
	n := newNode(t)
	pairs := keyPairs(t)
	oldKID := activeID(t, pairs)
	if _, err := pairs.Generate(4096); err != nil {
		t.Fatal(err)
	}
	clients := []map[string]any{
		client("old", n.srv.URL, encJWK(t, pairs, keystore.KeyPairActive), "RSA-OAEP-256", "A256GCM"),
		client("new", n.srv.URL, encJWK(t, pairs, keystore.KeyPairPending), "RSA-OAEP-256", "A256GCM"),
	}
	p := startProvider(t, clients, nil)
	deps := Deps{Keystores: p.stores(t), KeyPairs: pairs, Logger: slog.New(slog.DiscardHandler)}
	n.add(t, "old", baseConfig(p), deps)
	n.add(t, "new", baseConfig(p), deps)
	login := func(id, path string) callbackAnswer {
		t.Helper()
		b := newBrowser(t, p)
		return b.callback(b.login(n.url(id, path), "alice"))
	}

	if got := jwksKIDs(t, n.url("old", "jwks.json")); len(got) != 1 || got[0] != oldKID {
		t.Fatalf("JWKS before the verification started = %q, want only the active %s", got, oldKID)
	}
	// The provider still encrypts to the old key: the verification fails
	// and changes nothing.
	if got := login("old", "verify"); got.Outcome != "refused" || got.Reason != ReasonVerificationFail {
		t.Errorf("verification login with the old key = %+v, want refused %s", got, ReasonVerificationFail)
	}
	if got := pairStates(pairs); got[keystore.KeyPairActive] != oldKID || got[keystore.KeyPairPending] == "" {
		t.Fatalf("after a failed verification the pairs are %v, want %s still active and the pending kept", got, oldKID)
	}
	pendingKID := pairStates(pairs)[keystore.KeyPairPending]
	if got := jwksKIDs(t, n.url("old", "jwks.json")); len(got) != 2 || got[1] != pendingKID {
		t.Errorf("JWKS once the verification started = %q, want the active and the pending %s", got, pendingKID)
	}
	if got := login("old", "login"); got.Outcome != "authenticated" || got.User != "alice" {
		t.Errorf("login during the rotation = %+v, want alice", got)
	}
	// The provider encrypts to the pending key: the verification
	// promotes it, and the old one is retired.
	if got := login("new", "verify"); got.Outcome != "authenticated" || got.User != "alice" {
		t.Fatalf("verification login with the pending key = %+v, want alice", got)
	}
	got := pairStates(pairs)
	if got[keystore.KeyPairActive] != pendingKID || got[keystore.KeyPairPending] != "" {
		t.Fatalf("after the verification the pairs are %v, want %s active and none pending", got, pendingKID)
	}
	if got := login("new", "login"); got.Outcome != "authenticated" {
		t.Errorf("login with the new key = %+v, want alice", got)
	}
	if got := login("old", "login"); got.Reason != ReasonDecrypt {
		t.Errorf("login encrypted to the retired key = %+v, want refused %s", got, ReasonDecrypt)
	}
	// Without a pending pair there is nothing to verify.
	resp, err := http.Get(n.url("new", "verify"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("verify without a pending pair: %s, want 409", resp.Status)
	}
}

func activeID(t *testing.T, k *keystore.KeyPairs) string {
	t.Helper()
	id := pairStates(k)[keystore.KeyPairActive]
	if id == "" {
		t.Fatal("no active key pair")
	}
	return id
}

func pairStates(k *keystore.KeyPairs) map[string]string {
	out := map[string]string{}
	for _, p := range k.List() {
		out[p.State] = p.ID
	}
	return out
}

func jwksKIDs(t *testing.T, u string) []string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}
