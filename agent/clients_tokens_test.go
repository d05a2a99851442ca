package agent

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// hubKeystore puts a "hub" keystore with a certificate for 127.0.0.1
// (from a fresh CA) in the state directory, for a virtual host's TLS, and
// returns a client that trusts only that CA.
func hubKeystore(t *testing.T, stateDir string) *http.Client {
	t.Helper()
	m, err := keystore.Open(keystore.Options{Dir: filepath.Join(stateDir, keystoresDir), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := devcloud.NewCA("virtual host test CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.InstallKeystore(m, "hub", "tls", []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}}
}

// headerBackend is a plain HTTP backend that records the last request's
// headers and answers with its identity headers.
type headerBackend struct {
	mu   sync.Mutex
	last http.Header
	url  string
}

func newHeaderBackend(t *testing.T) *headerBackend {
	b := &headerBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b.mu.Lock()
		b.last = req.Header.Clone()
		b.mu.Unlock()
		fmt.Fprintf(w, "%s %s %s", req.Header.Get("X-Edgefort-User"), req.Header.Get("X-Edgefort-Directory"), req.Header.Get("X-Edgefort-Groups"))
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

func (b *headerBackend) header() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// getWith GETs url with a bearer token ("" for none).
func getWith(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Edgefort-User", "admin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

// TestUserTokensThroughTheNode: user tokens minted by devcloud's control
// plane (ES256, verified with the JWK Set it serves) and by the npm jose
// library (RS256, key file) are accepted through the agent's virtual hosts
// over TLS, and the control plane authorizes each request (alice is a
// viewer in sales, bob is nothing): alice reaches the backend as herself,
// bob gets 403, a tampered or missing token 401.
func TestUserTokensThroughTheNode(t *testing.T) {
	r := newCloudRig(t)
	dir, _ := r.enroll(t)
	client := hubKeystore(t, dir)
	backend := newHeaderBackend(t)
	idpKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&idpKey.PublicKey)
	pubFile := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	route := `      routes:
        - {name: apps, match: "GET /apps/{app}/", target: engine, action: app.read, resource: {type: app, id: "{app}", space: sales}}
`
	cfg := configIn(t, dir, cloudSection()+`clients:
  target_endpoints:
    - {name: engine, url: '`+backend.url+`'}
  virtual_hosts:
    - name: cloud
      listen: 127.0.0.1:0
      ssl: {enabled: true, keystore: hub}
      authentication:
        - jwt:
            issuer: '`+r.cp.URL()+`'
            audience: [`+devcloud.UserTokenAudience+`]
            algorithms: [ES256]
            jwks_url: '`+r.cp.URL()+api.PathJWKS+`'
            jwks_ssl: {truststore: ref://cloud-trust}
            claims: {directory: directory}
`+route+`    - name: idp
      listen: 127.0.0.1:0
      ssl: {enabled: true, keystore: hub}
      authentication:
        - jwt:
            issuer: https://id.example.test
            audience: [edgefort-node]
            key_files: ['`+pubFile+`']
            claims: {directory_value: corp}
`+route)
	a, _ := runAgent(t, cfg, slog.New(slog.DiscardHandler))
	testkit.WaitFor(t, "every component ready", a.Ready)
	hosts := a.Status().VirtualHosts

	mint := func(user string) string {
		tok, err := r.cp.MintUserToken(api.User{ID: user, Directory: "corp", Groups: []string{"engineers"}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	jose := func(user string) string {
		now := time.Now()
		return peertest.JoseSign(t, idpKey, "RS256", "", map[string]any{"iss": "https://id.example.test", "aud": "edgefort-node",
			"sub": user, "groups": []string{"engineers"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	}
	for _, tt := range []struct {
		host  string
		token func(string) string
	}{{"cloud", mint}, {"idp", jose}} {
		t.Run(tt.host, func(t *testing.T) {
			base := hosts[tt.host]
			if !strings.HasPrefix(base, "https://") {
				t.Fatalf("virtual host %s at %q, want https", tt.host, base)
			}
			alice := tt.token("alice")
			for _, c := range []struct {
				name, token string
				code        int
				body        string
			}{
				{"alice", alice, 200, "alice corp engineers"},
				{"alice again (cached)", alice, 200, "alice corp engineers"},
				{"bob", tt.token("bob"), 403, `"reason":"denied"`},
				{"tampered", alice[:len(alice)-4] + "AAAA", 401, `"reason":"bad_signature"`},
				{"no token", "", 401, `"reason":"no_credentials"`},
			} {
				code, body := getWith(t, client, base+"/apps/forecast/", c.token)
				if code != c.code || !strings.Contains(body, c.body) {
					t.Errorf("%s: %d %q, want %d with %q", c.name, code, body, c.code, c.body)
				}
			}
		})
	}
}

// TestIdentityJWTReachesTheBackend: a virtual host whose identity.jwt
// names the device keystore sends the backend a node-signed token for the
// user, which verifies with go-jose against the JWK Set the node serves
// at /.well-known/jwks.json, with the node as issuer and the configured
// audience; a token a client sends under that header never arrives.
func TestIdentityJWTReachesTheBackend(t *testing.T) {
	r := newCloudRig(t)
	dir, _ := r.enroll(t)
	client := hubKeystore(t, dir)
	backend := newHeaderBackend(t)
	cfg := configIn(t, dir, "device: {id: node-7}\n"+cloudSection()+`clients:
  target_endpoints:
    - {name: engine, url: '`+backend.url+`'}
  virtual_hosts:
    - name: hub
      listen: 127.0.0.1:0
      ssl: {enabled: true, keystore: hub}
      authentication:
        - anonymous: {user_id: alice, directory: corp, groups: [engineers]}
      identity:
        jwt: {keystore: ref://device-tls, key_alias: device, audience: local-engine}
      routes:
        - {name: apps, match: "GET /apps/{app}/", target: engine, action: app.read, anonymous: true, resource: {type: app, id: "{app}", space: sales}}
`)
	a, _ := runAgent(t, cfg, slog.New(slog.DiscardHandler))
	testkit.WaitFor(t, "every component ready", a.Ready)
	base := a.Status().VirtualHosts["hub"]
	req, _ := http.NewRequest(http.MethodGet, base+"/apps/forecast/", nil)
	req.Header.Set("X-Edgefort-Identity", "forged.by.client")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET through the node: %d", resp.StatusCode)
	}
	got := backend.header().Values("X-Edgefort-Identity")
	if len(got) != 1 {
		t.Fatalf("backend got identity tokens %q, want one", got)
	}
	jwksResp, err := client.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer jwksResp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(jwksResp.Body, 1<<20)).Decode(&set); err != nil || jwksResp.StatusCode != 200 {
		t.Fatalf("node JWKS: %d %v", jwksResp.StatusCode, err)
	}
	tok, err := josejwt.ParseSigned(got[0], []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("backend token %q: %v", got[0], err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the node's JWKS", tok.Headers[0].KeyID, len(keys))
	}
	var claims struct {
		josejwt.Claims
		Directory string   `json:"directory"`
		Groups    []string `json:"groups"`
	}
	if err := tok.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("the backend's token does not verify against the node's JWKS: %v", err)
	}
	if err := claims.ValidateWithLeeway(josejwt.Expected{Issuer: "edgefort:node-7", Subject: "alice", AnyAudience: josejwt.Audience{"local-engine"}, Time: time.Now()}, 0); err != nil {
		t.Errorf("claims %+v: %v", claims, err)
	}
	if claims.Directory != "corp" || strings.Join(claims.Groups, ",") != "engineers" {
		t.Errorf("directory %q groups %q, want corp [engineers]", claims.Directory, claims.Groups)
	}
}
