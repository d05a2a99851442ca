package backendjwt

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
)

// joseVerify verifies token with node's jose against the JWK Set at
// jwksURL, served over TLS with the certificate in caPEM, and returns the
// verified header and payload, or jose's refusal.
func joseVerify(t *testing.T, jwksURL string, caPEM []byte, audience, token string) (header, payload map[string]any, err error) {
	t.Helper()
	node, joseDir := peertest.Jose(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "verify.mjs", jwksURL, testIssuer, audience)
	cmd.Dir = joseDir
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+caFile)
	cmd.Stdin = strings.NewReader(token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("node verify.mjs: %w: %s", err, stderr.Bytes())
	}
	var got struct{ Header, Payload map[string]any }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node verify.mjs output %q: %v", out, err)
	}
	return got.Header, got.Payload, nil
}

// TestJoseVerifiesToken: an independent implementation, node's jose,
// verifies a minted token (RS256 and ES256) against the JWK Set it fetches
// over HTTPS from the minter's handler, issuer and audience checked.
func TestJoseVerifiesToken(t *testing.T) {
	for _, kind := range []string{"rsa", "ec"} {
		t.Run(kind, func(t *testing.T) {
			ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, kind, 0)})
			m := newMinter(t, Config{Keystore: "identity", Audience: "local-engine"}, ks, nil)
			srv := httptest.NewTLSServer(m.JWKS())
			defer srv.Close()
			caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

			token, err := m.Mint(alice)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := joseVerify(t, srv.URL+"/jwks.json", caPEM, "billing", token); err == nil || !strings.Contains(err.Error(), `unexpected "aud" claim value`) {
				t.Errorf("jose with another audience: %v; want the aud refused", err)
			}
			header, payload, err := joseVerify(t, srv.URL+"/jwks.json", caPEM, "local-engine", token)
			if err != nil {
				t.Fatal(err)
			}
			wantAlg := map[string]string{"rsa": "RS256", "ec": "ES256"}[kind]
			if header["alg"] != wantAlg || header["kid"] != m.cur.Load().kid || header["typ"] != "JWT" {
				t.Errorf("header = %v; want alg %s, kid %s, typ JWT", header, wantAlg, m.cur.Load().kid)
			}
			for _, k := range []string{"iat", "nbf", "exp", "jti"} {
				if payload[k] == nil {
					t.Errorf("payload has no %s: %v", k, payload)
				}
				delete(payload, k)
			}
			want := map[string]any{"iss": testIssuer, "sub": "alice", "aud": "local-engine", "directory": "devcloud",
				"groups": []any{"analysts", "admins"}, "solution": "jwt"}
			if diff := cmp.Diff(want, payload); diff != "" {
				t.Errorf("payload verified by jose (-want +got):\n%s", diff)
			}
		})
	}
}
