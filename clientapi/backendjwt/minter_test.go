package backendjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

const testIssuer = "urn:edgefort:node:test"

var alice = auth.Identity{UserID: "alice", Directory: "devcloud", Groups: []string{"analysts", "admins"}, Solution: "jwt"}

// clock is a settable clock for the minter.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	keysOnce sync.Once
	rsaKeys  []*rsa.PrivateKey
)

// testKey returns one of a few RSA 2048 keys generated once per test
// binary (generation is slow), or a fresh P-256 key.
func testKey(t testing.TB, kind string, n int) crypto.Signer {
	t.Helper()
	if kind == "ec" {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keysOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[n]
}

func selfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "identity signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// newManager is an in-memory keystore manager holding, for each name, a
// keystore with that key under alias "signer".
func newManager(t testing.TB, keys map[string]crypto.Signer) *keystore.Manager {
	t.Helper()
	m, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range keys {
		if err := m.CreateStore(name, keystore.KindKeystore); err != nil {
			t.Fatal(err)
		}
		if err := m.PutEntry(name, "signer", key, []*x509.Certificate{selfSigned(t, key)}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func newMinter(t testing.TB, cfg Config, ks *keystore.Manager, now func() time.Time) *Minter {
	t.Helper()
	m, err := New(cfg, Deps{Keystores: ks, Issuer: testIssuer, Logger: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// serveJWKS serves the minter's JWK Set over TLS and returns its URL and
// a client that trusts the server.
func serveJWKS(t testing.TB, m *Minter) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewTLSServer(m.JWKS())
	t.Cleanup(srv.Close)
	return srv.URL + "/.well-known/jwks.json", srv.Client()
}

// fetchJWKS gets the set over HTTP, as a backend does.
func fetchJWKS(t testing.TB, url string, client *http.Client) (jose.JSONWebKeySet, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v: %s", url, resp.StatusCode, err, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS does not parse with go-jose: %v\n%s", err, body)
	}
	return set, body
}

// backendClaims are what a backend reads from the token.
type backendClaims struct {
	jwt.Claims
	Directory string   `json:"directory"`
	Groups    []string `json:"groups"`
	Solution  string   `json:"solution"`
}

// goJoseVerify is a backend's check of token with go-jose against the JWK
// Set it fetched.
func goJoseVerify(token string, set jose.JSONWebKeySet, audience string, now time.Time) (backendClaims, string, error) {
	var c backendClaims
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return c, "", err
	}
	kid := tok.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		return c, kid, fmt.Errorf("kid %q: %d keys in the JWKS", kid, len(keys))
	}
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return c, kid, err
	}
	exp := jwt.Expected{Issuer: testIssuer, Time: now}
	if audience != "" {
		exp.AnyAudience = jwt.Audience{audience}
	}
	return c, kid, c.ValidateWithLeeway(exp, 0)
}

// TestBackendVerifiesToken: a backend behind a real TLS socket receives
// the token in the configured header and verifies it with go-jose against
// the JWK Set it fetched over HTTPS from the minter's handler.
func TestBackendVerifiesToken(t *testing.T) {
	for _, kind := range []string{"rsa", "ec"} {
		t.Run(kind, func(t *testing.T) {
			ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, kind, 0)})
			m := newMinter(t, Config{Keystore: "identity", Audience: "local-engine"}, ks, nil)
			jwksURL, jwksClient := serveJWKS(t, m)

			type seen struct {
				claims backendClaims
				err    error
			}
			got := make(chan seen, 1)
			backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				set, _ := fetchJWKS(t, jwksURL, jwksClient)
				c, _, err := goJoseVerify(r.Header.Get("X-Edgefort-Identity"), set, "local-engine", time.Now())
				got <- seen{c, err}
			}))
			defer backend.Close()

			token, err := m.Mint(alice)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, backend.URL, nil)
			req.Header.Set(m.Header(), token)
			resp, err := backend.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			s := <-got
			if s.err != nil {
				t.Fatalf("backend verification: %v", s.err)
			}
			if s.claims.Subject != "alice" || s.claims.Directory != "devcloud" || s.claims.Solution != "jwt" ||
				!cmp.Equal(s.claims.Groups, alice.Groups) || s.claims.ID == "" ||
				s.claims.Expiry.Time().Sub(s.claims.IssuedAt.Time()) != DefaultTTL {
				t.Errorf("claims = %+v; want alice's identity, a jti and exp = iat + %s", s.claims, DefaultTTL)
			}
		})
	}
}

// TestTokenRefusedByBackend: the tokens a backend must refuse are refused
// by the same verifier that accepts a good one.
func TestTokenRefusedByBackend(t *testing.T) {
	clk := newClock()
	ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, "rsa", 0), "other": testKey(t, "rsa", 1)})
	m := newMinter(t, Config{Keystore: "identity", Audience: "engine"}, ks, clk.Now)
	url, client := serveJWKS(t, m)
	set, _ := fetchJWKS(t, url, client)
	token, err := m.Mint(alice)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newMinter(t, Config{Keystore: "other", Audience: "engine"}, ks, clk.Now)
	foreign, err := stranger.Mint(alice)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	tests := []struct {
		name     string
		token    string
		audience string
		at       time.Time
		wantErr  string
	}{
		{"good", token, "engine", clk.Now(), ""},
		{"expired", token, "engine", clk.Now().Add(DefaultTTL + time.Second), "expired"},
		{"wrong audience", token, "billing", clk.Now(), "audience"},
		{"signed by a key not in the set", foreign, "engine", clk.Now(), "keys in the JWKS"},
		{"payload altered", parts[0] + "." + b64([]byte(`{"iss":"`+testIssuer+`","sub":"mallory"}`)) + "." + parts[2], "engine", clk.Now(), "cryptographic primitive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := goJoseVerify(tt.token, set, tt.audience, tt.at)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("verify: %v; want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestJWKSPublishesPublicKeysOnly: the set holds the signing key's public
// half, with kid = RFC 7638 thumbprint, and no private member.
func TestJWKSPublishesPublicKeysOnly(t *testing.T) {
	for _, kind := range []string{"rsa", "ec"} {
		t.Run(kind, func(t *testing.T) {
			key := testKey(t, kind, 0)
			ks := newManager(t, map[string]crypto.Signer{"identity": key})
			m := newMinter(t, Config{Keystore: "identity"}, ks, nil)
			url, client := serveJWKS(t, m)
			set, body := fetchJWKS(t, url, client)

			var raw struct{ Keys []map[string]any }
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range raw.Keys {
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
					if _, ok := k[private]; ok {
						t.Errorf("JWKS key has private member %q: %s", private, body)
					}
				}
			}
			want, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			wantAlg := map[string]string{"rsa": "RS256", "ec": "ES256"}[kind]
			if len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].KeyID != b64(want) ||
				set.Keys[0].Algorithm != wantAlg || set.Keys[0].Use != "sig" {
				t.Fatalf("JWKS = %s; want one public %s signing key, kid %s", body, wantAlg, b64(want))
			}
		})
	}
}

func TestJWKSHandler(t *testing.T) {
	ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, "ec", 0)})
	m := newMinter(t, Config{Keystore: "identity", TTL: 20 * time.Second}, ks, nil)
	url, client := serveJWKS(t, m)
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := []string{resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control")}
	if diff := cmp.Diff([]string{"application/json", "public, max-age=10"}, got); diff != "" {
		t.Errorf("GET headers (-want +got):\n%s", diff)
	}
	resp, err = client.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q; want 405, GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestRotationThroughRef: repointing the reference the minter names
// changes the kid of the next token with no restart; a token signed just
// before still verifies against the JWK Set fetched over HTTP for one TTL,
// after which the old key leaves the set.
func TestRotationThroughRef(t *testing.T) {
	clk := newClock()
	ks := newManager(t, map[string]crypto.Signer{"signer-2025": testKey(t, "rsa", 0), "signer-2026": testKey(t, "ec", 0)})
	if err := ks.SetRef("identity", "signer-2025"); err != nil {
		t.Fatal(err)
	}
	m := newMinter(t, Config{Keystore: "ref://identity"}, ks, clk.Now)
	url, client := serveJWKS(t, m)

	before, err := m.Mint(alice)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := fetchJWKS(t, url, client)
	_, oldKID, err := goJoseVerify(before, set, "", clk.Now())
	if err != nil {
		t.Fatalf("token before the rotation: %v", err)
	}

	if err := ks.SetRef("identity", "signer-2026"); err != nil {
		t.Fatal(err)
	}
	after, err := m.Mint(alice) // the cached token was signed by the old key: not reused
	if err != nil {
		t.Fatal(err)
	}
	set, _ = fetchJWKS(t, url, client)
	_, newKID, err := goJoseVerify(after, set, "", clk.Now())
	if err != nil {
		t.Fatalf("token after the rotation: %v", err)
	}
	if newKID == oldKID {
		t.Fatalf("kid %s did not change with the reference", newKID)
	}
	clk.Advance(DefaultTTL - time.Second)
	set, _ = fetchJWKS(t, url, client)
	if _, _, err := goJoseVerify(before, set, "", clk.Now()); err != nil {
		t.Fatalf("token signed before the rotation, within its TTL: %v", err)
	}
	clk.Advance(time.Second + retireSlack)
	set, _ = fetchJWKS(t, url, client)
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	if diff := cmp.Diff([]string{newKID}, kids); diff != "" {
		t.Errorf("JWKS kids one TTL after the rotation (-want +got):\n%s", diff)
	}
}

// TestMintReusesTokens: a token is reused for the same identity until half
// its TTL has passed, and never for another identity.
func TestMintReusesTokens(t *testing.T) {
	clk := newClock()
	ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, "ec", 0)})
	m := newMinter(t, Config{Keystore: "identity", TTL: 40 * time.Second}, ks, clk.Now)
	mint := func(id auth.Identity) string {
		t.Helper()
		tok, err := m.Mint(id)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := mint(alice)
	if again := mint(alice); again != first {
		t.Errorf("same identity at once: a new token; want the cached one")
	}
	others := map[string]auth.Identity{
		"other user":      {UserID: "bob", Directory: alice.Directory, Groups: alice.Groups, Solution: alice.Solution},
		"other directory": {UserID: "alice", Directory: "corp", Groups: alice.Groups, Solution: alice.Solution},
		"fewer groups":    {UserID: "alice", Directory: alice.Directory, Groups: alice.Groups[:1], Solution: alice.Solution},
		"group split":     {UserID: "alice", Directory: alice.Directory, Groups: []string{"analystsadmins"}, Solution: alice.Solution},
		"other solution":  {UserID: "alice", Directory: alice.Directory, Groups: alice.Groups, Solution: "anonymous"},
		"anonymous":       {UserID: "alice", Directory: alice.Directory, Groups: alice.Groups, Solution: alice.Solution, Anonymous: true},
	}
	for name, id := range others {
		if mint(id) == first {
			t.Errorf("%s: got alice's token", name)
		}
	}
	clk.Advance(19 * time.Second)
	if mint(alice) != first {
		t.Errorf("before half the TTL: a new token; want the cached one")
	}
	clk.Advance(time.Second)
	if mint(alice) == first {
		t.Errorf("at half the TTL: the cached token; want a new one")
	}
}

func TestMintCacheIsBounded(t *testing.T) {
	ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, "ec", 0)})
	m := newMinter(t, Config{Keystore: "identity"}, ks, nil)
	for i := range cacheSize + 10 {
		if _, err := m.Mint(auth.Identity{UserID: fmt.Sprint("user-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.cache.entries); n > cacheSize {
		t.Errorf("cache holds %d tokens; want at most %d", n, cacheSize)
	}
}

func TestMintRefusesIdentityWithoutUser(t *testing.T) {
	ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, "ec", 0)})
	m := newMinter(t, Config{Keystore: "identity"}, ks, nil)
	if _, err := m.Mint(auth.Identity{Directory: "x"}); err == nil || !strings.Contains(err.Error(), "no user id") {
		t.Fatalf("Mint without a user id: %v; want an error", err)
	}
}

// TestMintFailsWhenKeyGoes: an alias deleted after New makes Mint fail
// with its name, not sign with a stale key.
func TestMintFailsWhenKeyGoes(t *testing.T) {
	ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, "ec", 0)})
	m := newMinter(t, Config{Keystore: "identity", KeyAlias: "signer"}, ks, nil)
	if err := ks.DeleteEntry("identity", "signer"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Mint(alice); err == nil || !strings.Contains(err.Error(), `alias "signer"`) {
		t.Fatalf("Mint after the alias was deleted: %v; want an error naming it", err)
	}
	// Tokens signed before are still in flight: the set keeps their key.
	url, client := serveJWKS(t, m)
	if set, body := fetchJWKS(t, url, client); len(set.Keys) != 1 {
		t.Errorf("JWKS after the alias was deleted: %s; want the key it signed with", body)
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ks := newManager(t, map[string]crypto.Signer{"identity": testKey(t, "rsa", 0), "p384": p384})
	if err := ks.CreateStore("two", keystore.KindKeystore); err != nil {
		t.Fatal(err)
	}
	for _, alias := range []string{"a", "b"} {
		key := testKey(t, "ec", 0)
		if err := ks.PutEntry("two", alias, key, []*x509.Certificate{selfSigned(t, key)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		cfg       Config
		issuer    string
		wantField string
		wantErr   string
	}{
		{"no keystore", Config{Keystore: "nope"}, testIssuer, "keystore", `"nope"`},
		{"no reference", Config{Keystore: "ref://gone"}, testIssuer, "keystore", `"gone"`},
		{"no alias", Config{Keystore: "identity", KeyAlias: "missing"}, testIssuer, "key_alias", `alias "missing"`},
		{"alias needed", Config{Keystore: "two"}, testIssuer, "keystore", "has 2 aliases; set key_alias"},
		{"curve", Config{Keystore: "p384"}, testIssuer, "keystore", "only P-256"},
		{"no issuer", Config{Keystore: "identity"}, "", "issuer", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, Deps{Keystores: ks, Issuer: tt.issuer, Logger: slog.New(slog.DiscardHandler)})
			var fe *auth.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: %v; want a %s field error containing %q", err, tt.wantField, tt.wantErr)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // fields in error, in order
	}{
		{"minimal", Config{Keystore: "identity"}, nil},
		{"full", Config{Keystore: "ref://identity", KeyAlias: "signer", Header: "X-Identity", TTL: 10 * time.Minute, Audience: "engine", Issuer: "node-1"}, nil},
		{"no keystore", Config{}, []string{"keystore"}},
		{"empty reference", Config{Keystore: "ref://"}, []string{"keystore"}},
		{"bad header", Config{Keystore: "k", Header: "X Identity"}, []string{"header"}},
		{"proxy's header", Config{Keystore: "k", Header: "authorization"}, []string{"header"}},
		{"ttl short", Config{Keystore: "k", TTL: 9 * time.Second}, []string{"ttl"}},
		{"ttl long", Config{Keystore: "k", TTL: 11 * time.Minute}, []string{"ttl"}},
		{"everything", Config{Header: "a:b", TTL: time.Hour, Audience: " a", Issuer: "b "}, []string{"keystore", "header", "ttl", "audience", "issuer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *auth.FieldError
					if !errors.As(e, &fe) {
						t.Fatalf("error %v is not an *auth.FieldError", e)
					}
					got = append(got, fe.Field)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() = %v; fields (-want +got):\n%s", err, diff)
			}
		})
	}
}

func BenchmarkMint(b *testing.B) {
	for _, kind := range []string{"rsa", "ec"} {
		ks := newManager(b, map[string]crypto.Signer{"identity": testKey(b, kind, 0)})
		b.Run(kind+"/cached", func(b *testing.B) {
			m := newMinter(b, Config{Keystore: "identity", Audience: "engine"}, ks, nil)
			for b.Loop() {
				if _, err := m.Mint(alice); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kind+"/uncached", func(b *testing.B) {
			clk := newClock()
			m := newMinter(b, Config{Keystore: "identity", Audience: "engine"}, ks, clk.Now)
			for b.Loop() {
				clk.Advance(DefaultTTL) // every token is past reuse
				if _, err := m.Mint(alice); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRotationUnderLoad: while tokens are minted from several goroutines,
// the reference is repointed again and again among three keystores (each
// time until tokens were minted since); every token minted verifies against the
// JWK Set fetched afterwards.
func TestRotationUnderLoad(t *testing.T) {
	stores := []string{"k0", "k1", "k2"}
	ks := newManager(t, map[string]crypto.Signer{"k0": testKey(t, "rsa", 0), "k1": testKey(t, "ec", 0), "k2": testKey(t, "rsa", 1)})
	if err := ks.SetRef("identity", "k0"); err != nil {
		t.Fatal(err)
	}
	m := newMinter(t, Config{Keystore: "ref://identity"}, ks, nil)
	url, client := serveJWKS(t, m)

	const minters = 4
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards tokens
		tokens = map[string]bool{}
		calls  atomic.Int64 // Mint calls returned
		stop   = make(chan struct{})
		errs   = make(chan error, minters)
	)
	for g := range minters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := m.Mint(auth.Identity{UserID: fmt.Sprintf("user-%d-%d", g, i%5)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				tokens[tok] = true
				mu.Unlock()
				calls.Add(1)
			}
		}()
	}
	for i := range 60 {
		if err := ks.SetRef("identity", stores[(i+1)%len(stores)]); err != nil {
			t.Fatal(err)
		}
		n := calls.Load()
		testkit.WaitFor(t, "tokens minted after a rotation", func() bool { return calls.Load() >= n+2*minters })
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Mint during rotations: %v", err)
	}
	set, body := fetchJWKS(t, url, client)
	if len(set.Keys) != len(stores) {
		t.Errorf("JWKS after rotations among %d keys, all used: %s; want each once", len(stores), body)
	}
	for tok := range tokens {
		if _, kid, err := goJoseVerify(tok, set, "", time.Now()); err != nil {
			t.Fatalf("token (kid %s) of %d minted during rotations: %v", kid, len(tokens), err)
		}
	}
}
