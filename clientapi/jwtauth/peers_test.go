package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/keystore"
)

// writePublicKey writes key's public half as PEM.
func writePublicKey(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestJosePeerTokens: tokens signed by an independent implementation, the
// npm package jose, are accepted for every algorithm family, with and
// without kid; the same token with a claim changed is refused.
func TestJosePeerTokens(t *testing.T) {
	rsaKey := testKeys()[0]
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	clk := newClock()
	cfg := baseConfig()
	cfg.Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
	var files []string
	for _, k := range []crypto.Signer{rsaKey, ec256, ec384, ed} {
		files = append(files, writePublicKey(t, k))
	}
	cfg.KeyFiles = files
	s := newTestSolution(t, cfg, clk, nil)
	claims := map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "alice", "groups": []string{"staff", "ops"},
		"iat": clk.Now().Unix(), "exp": clk.Now().Add(time.Hour).Unix(),
	}
	for _, tt := range []struct {
		alg string
		key crypto.Signer
	}{
		{"RS256", rsaKey}, {"RS384", rsaKey}, {"RS512", rsaKey},
		{"PS256", rsaKey}, {"PS384", rsaKey}, {"PS512", rsaKey},
		{"ES256", ec256}, {"ES384", ec384}, {"EdDSA", ed},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			k, err := newVerifyKey(tt.key.Public(), "", "", "test")
			if err != nil {
				t.Fatal(err)
			}
			for _, kid := range []string{k.thumbprint, ""} {
				tok := peertest.JoseSign(t, tt.key, tt.alg, kid, claims)
				got := mustAuthenticate(t, s, bearer(tok))
				want := auth.Identity{UserID: "alice", Directory: testIssuer, Groups: []string{"staff", "ops"}, Solution: "jwt", Expires: time.Unix(clk.Now().Add(time.Hour).Unix(), 0)}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("kid %q: identity (-want +got):\n%s", kid, diff)
				}
			}
			c := map[string]any{}
			for k, v := range claims {
				c[k] = v
			}
			c["iss"] = "https://evil.example"
			if res := s.Authenticate(bearer(peertest.JoseSign(t, tt.key, tt.alg, k.thumbprint, c))); res.Reason != ReasonBadIssuer {
				t.Errorf("jose token from another issuer: %v %s, want %s", res.Outcome, res.Reason, ReasonBadIssuer)
			}
		})
	}
}

// TestDevcloudUserTokens: user tokens minted by devcloud's control plane
// (ES256), verified with the JWK Set it serves over TLS, as the node does
// in the dev environment.
func TestDevcloudUserTokens(t *testing.T) {
	ca, err := devcloud.NewCA("jwtauth test CA")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := devcloud.NewControlPlane(devcloud.ControlPlaneOptions{CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })

	stores := newStores(t)
	if err := stores.CreateStore("cloud", keystore.KindTruststore); err != nil {
		t.Fatal(err)
	}
	if err := stores.PutTrusted("cloud", "ca", []*x509.Certificate{ca.Cert}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Issuer:     cp.URL(),
		Audience:   []string{devcloud.UserTokenAudience},
		Algorithms: []string{"ES256"},
		JWKSURL:    cp.URL() + api.PathJWKS,
		JWKSSSL:    keystore.SSL{Truststore: "cloud"},
		Claims:     Claims{Directory: "directory"},
	}
	s, err := New(cfg, Deps{Keystores: stores, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	alice := api.User{ID: "alice", Directory: "corp", Groups: []string{"engineers"}}
	tok, err := cp.MintUserToken(alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got := mustAuthenticate(t, s, bearer(tok))
	if got.UserID != "alice" || got.Directory != "corp" || !cmp.Equal(got.Groups, []string{"engineers"}) || time.Until(got.Expires) < 59*time.Minute {
		t.Errorf("identity = %+v", got)
	}
	if n := cp.Stats().JWKSCalls; n != 1 {
		t.Errorf("JWKS calls = %d, want 1", n)
	}
	bobTok, err := cp.MintUserToken(api.User{ID: "bob", Directory: "corp"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bobTok[:len(bobTok)-4] + "AAAA"
	if res := s.Authenticate(bearer(tampered)); res.Outcome != auth.Refused || res.Reason != ReasonBadSignature {
		t.Errorf("tampered devcloud token: %v %s, want refused %s", res.Outcome, res.Reason, ReasonBadSignature)
	}
}
