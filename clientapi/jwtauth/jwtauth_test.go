package jwtauth

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // fields named, in order
	}{
		{"valid", func(c *Config) {}, nil},
		{"valid with every algorithm", func(c *Config) {
			c.Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
		}, nil},
		{"nothing", func(c *Config) { *c = Config{} }, []string{"issuer", "audience", "key_files"}},
		{"empty audience", func(c *Config) { c.Audience = []string{"a", ""} }, []string{"audience[1]"}},
		{"http jwks", func(c *Config) { c.KeyFiles = nil; c.JWKSURL = "http://id.example/jwks" }, []string{"jwks_url"}},
		{"jwks without host", func(c *Config) { c.JWKSURL = "https:///jwks" }, []string{"jwks_url"}},
		{"jwks with credentials", func(c *Config) { c.JWKSURL = "https://u:p@id.example/jwks" }, []string{"jwks_url"}},
		{"none and HMAC", func(c *Config) { c.Algorithms = []string{"RS256", "none", "HS256", "hs512", "RSA-OAEP"} },
			[]string{"algorithms[1]", "algorithms[2]", "algorithms[3]", "algorithms[4]"}},
		{"leeway too large", func(c *Config) { c.Leeway = 6 * time.Minute }, []string{"leeway"}},
		{"leeway negative", func(c *Config) { c.Leeway = -time.Second }, []string{"leeway"}},
		{"negative sizes and intervals", func(c *Config) {
			c.MaxTokenBytes, c.Cache.Size, c.JWKSRefresh, c.JWKSMinInterval = -1, -1, -1, -1
		}, []string{"jwks_refresh", "jwks_min_interval", "max_token_bytes", "cache.size"}},
		{"empty key file", func(c *Config) { c.KeyFiles = []string{""} }, []string{"key_files[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.KeyFiles = []string{"/etc/idp.pem"}
			tt.change(&cfg)
			var got []string
			for _, e := range unjoin(cfg.Validate()) {
				var fe *auth.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a *auth.FieldError", e)
				}
				got = append(got, fe.Field)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s\nerror: %v", diff, cfg.Validate())
			}
		})
	}
	cfg := baseConfig()
	cfg.KeyFiles = []string{"k.pem"}
	cfg.Algorithms = []string{"HS256"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "public key must never serve as one") {
		t.Errorf("HS256: error %v does not say why", err)
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestNewKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "private.pem")
	os.WriteFile(priv, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	badDER := filepath.Join(dir, "bad.pem")
	os.WriteFile(badDER, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600)
	for _, tt := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pem"), "missing.pem: no such file"},
		{priv, "key file " + priv + ": PEM block 1 is \"PRIVATE KEY\""},
		{junk, "key file " + junk + ": no PEM public key"},
		{badDER, "key file " + badDER + ": PEM block 1 (PUBLIC KEY)"},
	} {
		cfg := baseConfig()
		cfg.KeyFiles = []string{tt.file}
		_, err := New(cfg, Deps{Keystores: newStores(t), Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(key file %s) = %v, want an error containing %q", filepath.Base(tt.file), err, tt.want)
		}
	}
}

// TestNewTouchesNoNetwork: New with a JWK Set URL nobody serves
// succeeds; the fetch is the first request's.
func TestNewTouchesNoNetwork(t *testing.T) {
	j := newJWKSServer(t)
	stores := j.stores(t)
	j.srv.Close()
	s := newTestSolution(t, j.config(), newClock(), stores)
	if n := s.jwks.fetches.Load(); n != 0 {
		t.Fatalf("New made %d fetches, want 0", n)
	}
	key := testKeys()[0]
	res := s.Authenticate(bearer(jwttest.Valid(t, setup(key, "k1", newClock()))))
	if res.Outcome != auth.Refused || res.Reason != ReasonUnknownKID {
		t.Errorf("with the JWK set unreachable: %v %s, want refused %s", res.Outcome, res.Reason, ReasonUnknownKID)
	}
}

func TestAuthenticateKeyFile(t *testing.T) {
	clk := newClock()
	key := testKeys()[0]
	cfg := baseConfig()
	cfg.KeyFiles = []string{writeKeyFile(t, testKeys()[1]), writeKeyFile(t, key)}
	cfg.Cookie = "edge_token"
	cfg.Name = "idp"
	s := newTestSolution(t, cfg, clk, nil)
	if s.Kind() != "jwt" || s.Name() != "idp" {
		t.Errorf("Kind, Name = %q, %q", s.Kind(), s.Name())
	}
	st := setup(key, thumbprint(t, key), clk)
	valid := jwttest.Valid(t, st)
	want := auth.Identity{UserID: "alice", Directory: testIssuer, Groups: []string{"staff"}, Solution: "idp", Expires: time.Unix(clk.Now().Add(time.Hour).Unix(), 0)}

	noKID := jwttest.Sign(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS512"}, jwttest.Claims(st))
	claims := jwttest.Claims(st)
	claims["groups"] = "ops"
	claims["aud"] = []string{"x", testAudience}
	stringGroups := jwttest.Sign(t, jwt.SigningMethodRS512, key, map[string]any{"alg": "RS512", "typ": "at+jwt"}, claims)

	cookieReq := httptest.NewRequest(http.MethodGet, "/", nil)
	cookieReq.AddCookie(&http.Cookie{Name: "edge_token", Value: valid})
	lower := httptest.NewRequest(http.MethodGet, "/", nil)
	lower.Header.Set("Authorization", "bEaReR  "+valid)
	for _, tt := range []struct {
		name   string
		r      *http.Request
		groups []string
	}{
		{"bearer", bearer(valid), []string{"staff"}},
		{"bearer any case", lower, []string{"staff"}},
		{"cookie", cookieReq, []string{"staff"}},
		{"no kid, RS256 signature under an RS512 header", nil, nil},
		{"groups as a string, aud a list, typ at+jwt", bearer(stringGroups), []string{"ops"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.r == nil {
				// A key file's key verifies a token without kid, but the
				// header's alg is the one checked.
				res := s.Authenticate(bearer(noKID))
				if res.Reason != ReasonBadSignature {
					t.Errorf("got %v %s, want %s", res.Outcome, res.Reason, ReasonBadSignature)
				}
				return
			}
			got := mustAuthenticate(t, s, tt.r)
			w := want
			w.Groups = tt.groups
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}

	for _, tt := range []struct {
		name   string
		header string
	}{{"none", ""}, {"basic", "Basic YWxpY2U6c2VjcmV0"}, {"negotiate", "Negotiate abc"}} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		if res := s.Authenticate(r); res.Outcome != auth.NoCredentials {
			t.Errorf("%s: %v %s, want no credentials", tt.name, res.Outcome, res.Reason)
		}
	}
}

// TestDirectoryClaim: the directory comes from the configured claim, else
// the configured value.
func TestDirectoryClaim(t *testing.T) {
	clk := newClock()
	key := testKeys()[0]
	cfg := baseConfig()
	cfg.KeyFiles = []string{writeKeyFile(t, key)}
	cfg.Claims = Claims{UserID: "email", Directory: "idp", DirectoryValue: "corp", Groups: "roles"}
	s := newTestSolution(t, cfg, clk, nil)
	st := setup(key, thumbprint(t, key), clk)
	sign := func(change map[string]any) *http.Request {
		c := jwttest.Claims(st)
		for k, v := range change {
			c[k] = v
		}
		return bearer(jwttest.Sign(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS256", "kid": st.KID}, c))
	}
	got := mustAuthenticate(t, s, sign(map[string]any{"email": "a@x", "idp": "ldap", "roles": []string{"r1", "r2"}}))
	if got.UserID != "a@x" || got.Directory != "ldap" || !cmp.Equal(got.Groups, []string{"r1", "r2"}) {
		t.Errorf("identity = %+v", got)
	}
	got = mustAuthenticate(t, s, sign(map[string]any{"email": "b@x"}))
	if got.Directory != "corp" || got.Groups != nil {
		t.Errorf("identity without directory and roles = %+v, want directory corp, no groups", got)
	}
	if res := s.Authenticate(sign(map[string]any{"email": "b@x", "idp": 3})); res.Reason != ReasonBadClaims {
		t.Errorf("directory claim a number: %v %s, want %s", res.Outcome, res.Reason, ReasonBadClaims)
	}
	if res := s.Authenticate(sign(nil)); res.Reason != ReasonBadUserID {
		t.Errorf("no email claim: %v %s, want %s", res.Outcome, res.Reason, ReasonBadUserID)
	}
}

// TestLeeway: exp, nbf and iat are allowed the configured skew, no more.
func TestLeeway(t *testing.T) {
	clk := newClock()
	key := testKeys()[0]
	cfg := baseConfig()
	cfg.KeyFiles = []string{writeKeyFile(t, key)}
	cfg.Leeway = 10 * time.Second
	off := false
	cfg.Cache.Enabled = &off
	s := newTestSolution(t, cfg, clk, nil)
	st := setup(key, thumbprint(t, key), clk)
	now := clk.Now().Unix()
	for _, tt := range []struct {
		name   string
		claims map[string]any
		reason string
	}{
		{"exp 5s ago", map[string]any{"exp": now - 5}, ""},
		{"exp 10s ago", map[string]any{"exp": now - 10}, ReasonExpired},
		{"nbf in 10s", map[string]any{"nbf": now + 10}, ""},
		{"nbf in 11s", map[string]any{"nbf": now + 11}, ReasonNotYetValid},
		{"iat in 10s", map[string]any{"iat": now + 10}, ""},
		{"iat in 11s", map[string]any{"iat": now + 11}, ReasonIssuedInFuture},
		{"fractional exp", map[string]any{"exp": float64(now) + 0.5}, ""},
	} {
		c := jwttest.Claims(st)
		for k, v := range tt.claims {
			c[k] = v
		}
		res := s.Authenticate(bearer(jwttest.Sign(t, jwt.SigningMethodRS256, key, map[string]any{"alg": "RS256", "kid": st.KID}, c)))
		if res.Reason != tt.reason || (tt.reason == "") != (res.Outcome == auth.Authenticated) {
			t.Errorf("%s: %v %s (%v), want reason %q", tt.name, res.Outcome, res.Reason, res.Err, tt.reason)
		}
	}
}

// TestRefusalErrorsHoldNoToken: the log detail of a refusal never carries
// the token or its signature.
func TestRefusalErrorsHoldNoToken(t *testing.T) {
	clk := newClock()
	key := testKeys()[0]
	cfg := baseConfig()
	cfg.KeyFiles = []string{writeKeyFile(t, key)}
	s := newTestSolution(t, cfg, clk, nil)
	for _, c := range jwttest.Corpus(t, setup(key, thumbprint(t, key), clk)) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		c.Apply(r)
		res := s.Authenticate(r)
		if res.Err == nil {
			continue
		}
		for _, v := range c.Authorization {
			tok := strings.TrimSpace(v[strings.Index(v, " ")+1:])
			for _, part := range strings.Split(tok, ".") {
				if len(part) > 20 && strings.Contains(res.Err.Error(), part) {
					t.Errorf("%s: error %q holds a token segment", c.Name, res.Err)
				}
			}
		}
	}
}
