package clientapi

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/backendjwt"
	"github.com/edgefort/edgefort/clientapi/jwtauth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
	"github.com/edgefort/edgefort/keystore"
)

// The real JWT solution, configured as a virtual host's first solution.
const (
	userIssuer   = "https://id.example.test"
	userAudience = "edgefort-node"
)

// userKeys are the identity provider's signing keys, generated once per
// test binary (RSA key generation is slow under -race): [0] signs, [1] is
// the key a JWK Set drops.
var userKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 2)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// userKeyFile writes the public half of the signing key as PEM.
func userKeyFile(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&userKeys()[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwtFromFile is the JWT solution trusting userKeys()[0] from a key file,
// and the corpus setup that matches it.
func jwtFromFile(t testing.TB, cookie string) (*jwtauth.Config, jwttest.Setup) {
	t.Helper()
	cfg := &jwtauth.Config{Issuer: userIssuer, Audience: []string{userAudience}, KeyFiles: []string{userKeyFile(t)}, Cookie: cookie}
	return cfg, jwttest.Setup{Key: userKeys()[0], KID: jwttest.Thumbprint(t, &userKeys()[0].PublicKey),
		Issuer: userIssuer, Audience: userAudience, Now: time.Now(), Cookie: cookie}
}

// idpJWKS is an identity provider's JWK Set on a real TLS socket (a
// certificate from the rig's CA), whose keys the test changes.
type idpJWKS struct {
	url      string
	mu       sync.Mutex
	body     []byte
	requests atomic.Int64
}

func (r *rig) jwks(t testing.TB) *idpJWKS {
	t.Helper()
	j := &idpJWKS{}
	te := r.backend(t, "idp", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.requests.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(j.body)
	}))
	j.url = te.URL + "/.well-known/jwks.json"
	return j
}

func (j *idpJWKS) serve(t testing.TB, keys map[string]*rsa.PrivateKey) {
	t.Helper()
	var set jose.JSONWebKeySet
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.body = b
}

// config fetches keys from the set, trusting the rig's CA, and refetches
// at once on an unknown kid (so that a removed key is noticed).
func (j *idpJWKS) config(cookie string) *jwtauth.Config {
	return &jwtauth.Config{Issuer: userIssuer, Audience: []string{userAudience}, JWKSURL: j.url,
		JWKSSSL: keystore.SSL{Truststore: "ca"}, JWKSMinInterval: time.Nanosecond, Cookie: cookie}
}

// countingBackend is an echo backend that counts the requests it gets.
func (r *rig) countingBackend(t testing.TB) (TargetEndpoint, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	e := echo()
	return r.backend(t, "engine", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n.Add(1)
		e.ServeHTTP(w, req)
	})), &n
}

// get sends GET base+path with the headers and cookies of apply over
// client; it returns the status, the request id and the body.
func get(t testing.TB, client *http.Client, url string, apply func(*http.Request)) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	apply(req)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header.Get(HeaderRequestID), body
}

func bearerToken(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// TestAttackCorpusThroughTheNode runs jwttest.Corpus against a virtual
// host whose chain is the real JWT solution, keys from a file and from a
// JWK Set URL (from which a key was removed), over TLS, in front of a
// backend that counts: every case is 401 with an audit line carrying its
// reason, and none reaches the backend; a valid token then does.
func TestAttackCorpusThroughTheNode(t *testing.T) {
	for _, tt := range []struct {
		name   string
		jwks   bool
		cookie string
	}{
		{"key file", false, ""},
		{"jwks url, cookie", true, "edge_token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.authz.permit("alice app.read app/sales/a1")
			target, count := r.countingBackend(t)
			cfg := routeTo(target, time.Minute)
			vh := &cfg.VirtualHosts[0]
			vh.FailedAuthLimit = RateLimit{PerSecond: 1000, Burst: 1000} // the corpus is one client's burst
			var sol *jwtauth.Config
			var st jwttest.Setup
			var j *idpJWKS
			if tt.jwks {
				j = r.jwks(t)
				j.serve(t, map[string]*rsa.PrivateKey{"k1": userKeys()[0], "gone": userKeys()[1]})
				sol = j.config(tt.cookie)
				st = jwttest.Setup{Key: userKeys()[0], KID: "k1", Issuer: userIssuer, Audience: userAudience, Now: time.Now(), Cookie: tt.cookie,
					RemovedKey: userKeys()[1], RemovedKID: "gone"}
			} else {
				sol, st = jwtFromFile(t, tt.cookie)
			}
			vh.Authentication = []Solution{{JWT: sol}}
			srv, err := New(cfg, r.deps())
			if err != nil {
				t.Fatal(err)
			}
			runServer(t, srv)
			url := srv.URLs()["hub"] + "/x"
			client := r.client("", false)
			if tt.jwks {
				// The removed key's token passes while the set serves it...
				gone := jwttest.Sign(t, jwt.SigningMethodRS256, userKeys()[1], map[string]any{"alg": "RS256", "kid": "gone"}, jwttest.Claims(st))
				if code, _, body := get(t, client, url, bearerToken(gone)); code != 200 {
					t.Fatalf("token of the key still in the set: %d %s", code, body)
				}
				// ...and the set drops it: the corpus's token for it names an
				// unknown kid, whose refetch finds no such key.
				j.serve(t, map[string]*rsa.PrivateKey{"k1": userKeys()[0]})
			}
			before := count.Load()
			cases := jwttest.Corpus(t, st)
			if len(cases) < 30 {
				t.Fatalf("corpus has %d cases, want at least 30", len(cases))
			}
			for _, c := range cases {
				code, id, body := get(t, client, url, c.Apply)
				want := c.Reason
				if c.Outcome == auth.NoCredentials {
					want = ReasonNoCredentials
				}
				if code != http.StatusUnauthorized {
					t.Errorf("%s: %d %s, want 401", c.Name, code, body)
					continue
				}
				checkProblem(t, body, want, id)
				if got := auditLine(r.logs, id); got == nil || got[logKeyReason] != want || got[logKeySolution] != map[bool]string{true: "none", false: "jwt"}[c.Outcome == auth.NoCredentials] {
					t.Errorf("%s: audit line %v, want reason %q", c.Name, got, want)
				}
			}
			if n := count.Load() - before; n != 0 {
				t.Errorf("the backend got %d requests from the corpus, want 0", n)
			}
			valid := jwttest.Valid(t, st)
			if code, _, body := get(t, client, url, bearerToken(valid)); code != 200 {
				t.Fatalf("valid token after the corpus: %d %s", code, body)
			}
			if n := count.Load() - before; n != 1 {
				t.Errorf("the backend got %d requests for the valid token, want 1", n)
			}
			if tt.cookie != "" {
				if code, _, body := get(t, client, url, func(req *http.Request) { req.AddCookie(&http.Cookie{Name: tt.cookie, Value: valid}) }); code != 200 {
					t.Errorf("valid token in the cookie: %d %s", code, body)
				}
			}
			if sig := valid[strings.LastIndex(valid, ".")+1:]; strings.Contains(r.logs.String(), sig) {
				t.Errorf("a token's signature is in the log")
			}
		})
	}
}

// auditLine is the authentication line of request id, nil when none.
func auditLine(logs *syncBuffer, id string) map[string]any {
	for _, l := range logs.lines("authentication") {
		if l[logKeyRequestID] == id {
			return l
		}
	}
	return nil
}

// TestClientIdentityHeadersNeverReachTheBackend: with the real JWT
// solution and the anonymous one, configured identity header names, a
// node-signed identity token under a configured header, extra headers to
// strip and a trusted-proxy list the client is not on, nothing a client
// sends under any of those names (any case, repeated, over HTTP/1.1 and
// HTTP/2) reaches the backend: it sees only the node's values.
func TestClientIdentityHeadersNeverReachTheBackend(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	r.authz.permit("anonymous page.read space//sales")
	target, _ := r.countingBackend(t)
	cfg := hubConfig(target)
	vh := &cfg.VirtualHosts[0]
	sol, st := jwtFromFile(t, "")
	vh.Authentication = []Solution{{JWT: sol}, {Anonymous: &Anonymous{}}}
	vh.TrustedProxies = []string{"10.0.0.0/8"}
	vh.Identity = Identity{
		Headers: IdentityHeaders{UserID: "X-Remote-User", Directory: "X-Remote-Directory", Groups: "X-Remote-Groups"},
		Strip:   []string{"X-Auth-Request-Email"},
		JWT:     IdentityJWT{Keystore: "hub", Header: "X-Node-Identity"},
	}
	deps := r.deps()
	deps.IdentityMinter = func(c IdentityJWT) (IdentityMinter, error) {
		return backendjwt.New(c, backendjwt.Deps{Keystores: r.stores, Issuer: "edgefort:test", Logger: deps.Logger})
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, srv)
	base := srv.URLs()["hub"]
	port := base[strings.LastIndex(base, ":")+1:]
	forged := http.Header{}
	for _, name := range []string{
		"X-Edgefort-User", "x-edgefort-directory", "X-EDGEFORT-GROUPS", "X-Edgefort-Identity", "X-Edgefort-Anything",
		"X-Remote-User", "x-remote-directory", "X-Remote-Groups", "X-Node-Identity", "X-Auth-Request-Email",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded",
	} {
		forged[name] = []string{"203.0.113.66", "admin"} // sent twice; both must go
	}
	valid := jwttest.Valid(t, st)
	for _, h2 := range []bool{false, true} {
		client := r.client("", h2)
		for _, tt := range []struct {
			name, path, token, user, dir, groups string
		}{
			{"alice", "/api/v1/apps/a1/", valid, "alice", userIssuer, "staff"},
			{"anonymous", "/public/p", "", "anonymous", "anonymous", ""},
		} {
			code, _, body := get(t, client, base+tt.path, func(req *http.Request) {
				for k, v := range forged {
					req.Header[k] = v // raw names: the case the client chose goes on the wire
				}
				if tt.token != "" {
					req.Header.Set("Authorization", "Bearer "+tt.token)
				}
			})
			if code != 200 {
				t.Fatalf("h2 %v, %s: %d %s", h2, tt.name, code, body)
			}
			var s seen
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"X-Remote-User": tt.user, "X-Remote-Directory": tt.dir, "X-Remote-Groups": tt.groups,
				"X-Edgefort-User": "", "X-Edgefort-Directory": "", "X-Edgefort-Groups": "", "X-Edgefort-Identity": "", "X-Edgefort-Anything": "",
				"X-Auth-Request-Email": "", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "127.0.0.1:" + port, "X-Forwarded-Proto": "https",
				"Forwarded": `for=127.0.0.1;host="127.0.0.1:` + port + `";proto=https`,
			}
			for k, v := range want {
				if got := strings.Join(s.Header.Values(k), "|"); got != v {
					t.Errorf("h2 %v, %s: backend header %s = %q, want %q", h2, tt.name, k, got, v)
				}
			}
			if got := s.Header.Values("X-Node-Identity"); len(got) != 1 || strings.Count(got[0], ".") != 2 || strings.Contains(got[0], "admin") || strings.Contains(got[0], "203.0.113.66") {
				t.Errorf("h2 %v, %s: backend X-Node-Identity %q, want the node's token only", h2, tt.name, got)
			}
		}
	}
}
