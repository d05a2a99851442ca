package devcloud

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/cloudclient/api"
)

func TestControlPlaneToken(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{TokenLifetime: 10 * time.Minute})
	ec := enrollNode(t, cp, nil)
	rs := enrollNode(t, cp, mustRSA(t, 2048))
	other := enrollNode(t, cp, nil)
	replayed := ec.assertion(nil)
	now := time.Now()

	for _, tc := range []struct {
		name    string
		node    *testNode
		form    url.Values // nil: a grant of assertion
		edit    func(h map[string]any, c jwt.MapClaims)
		sign    func() string // overrides node.assertion
		invalid string
		code    string // OAuth error; "" means success
		desc    string
	}{
		{name: "ES256", node: ec},
		{name: "RS256", node: rs},
		{name: "aud in an array", node: ec, edit: func(_ map[string]any, c jwt.MapClaims) { c["aud"] = []string{"other", cp.TokenURL()} }},
		{name: "first use", node: ec, sign: func() string { return replayed }},
		{name: "replayed jti", node: ec, sign: func() string { return replayed }, code: "invalid_grant", desc: "jti already used"},
		{name: "same jti, other device", node: other, edit: func(_ map[string]any, c jwt.MapClaims) {
			c["jti"] = "shared-jti"
		}},
		{name: "expired", node: ec, code: "invalid_grant", desc: "expired", edit: func(_ map[string]any, c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-3*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		}},
		{name: "expired within leeway", node: ec, edit: func(_ map[string]any, c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-time.Minute).Unix(), now.Add(-10*time.Second).Unix()
		}},
		{name: "wrong audience", node: ec, code: "invalid_grant", desc: "aud must be " + cp.TokenURL(), edit: func(_ map[string]any, c jwt.MapClaims) {
			c["aud"] = cp.URL()
		}},
		{name: "iss is not sub", node: ec, code: "invalid_grant", desc: "iss and sub", edit: func(_ map[string]any, c jwt.MapClaims) {
			c["iss"] = "someone-else"
		}},
		{name: "sub is another device", node: ec, code: "invalid_grant", desc: "iss and sub", edit: func(_ map[string]any, c jwt.MapClaims) {
			c["iss"], c["sub"] = other.id, other.id
		}},
		{name: "unknown kid", node: ec, code: "invalid_grant", desc: "unknown kid", edit: func(h map[string]any, _ jwt.MapClaims) { h["kid"] = "nope" }},
		{name: "no kid", node: ec, code: "invalid_grant", desc: "no kid", edit: func(h map[string]any, _ jwt.MapClaims) { delete(h, "kid") }},
		{name: "kid of another device", node: ec, code: "invalid_grant", desc: "signature", edit: func(h map[string]any, c jwt.MapClaims) {
			h["kid"] = other.kid
			c["iss"], c["sub"] = other.id, other.id
		}},
		{name: "lifetime over 5m", node: ec, code: "invalid_grant", desc: "lifetime", edit: func(_ map[string]any, c jwt.MapClaims) {
			c["exp"] = now.Add(6 * time.Minute).Unix()
		}},
		{name: "no exp", node: ec, code: "invalid_grant", desc: "exp", edit: func(_ map[string]any, c jwt.MapClaims) { delete(c, "exp") }},
		{name: "no iat", node: ec, code: "invalid_grant", desc: "iat missing", edit: func(_ map[string]any, c jwt.MapClaims) { delete(c, "iat") }},
		{name: "iat in the future", node: ec, code: "invalid_grant", desc: "iat is in the future", edit: func(_ map[string]any, c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(2*time.Minute).Unix(), now.Add(4*time.Minute).Unix()
		}},
		{name: "no jti", node: ec, code: "invalid_grant", desc: "jti missing", edit: func(_ map[string]any, c jwt.MapClaims) { delete(c, "jti") }},
		{name: "HS256", node: ec, code: "invalid_grant", desc: "signing method HS256 is invalid", sign: func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": ec.id, "sub": ec.id, "aud": cp.TokenURL(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "hs"})
			tok.Header["kid"] = ec.kid
			s, _ := tok.SignedString([]byte(ec.kid))
			return s
		}},
		{name: "alg none", node: ec, code: "invalid_grant", desc: "signing method none is invalid", sign: func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": ec.id, "sub": ec.id, "aud": cp.TokenURL(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "none"})
			tok.Header["kid"] = ec.kid
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}},
		{name: "RS256 header on an EC key", node: ec, code: "invalid_grant", desc: "assertion", sign: func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": ec.id, "sub": ec.id, "aud": cp.TokenURL(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "rs"})
			tok.Header["kid"] = ec.kid
			s, _ := tok.SignedString(rs.key)
			return s
		}},
		{name: "unsupported grant type", node: ec, form: url.Values{"grant_type": {"client_credentials"}, "assertion": {"a.b.c"}},
			invalid: "grant_type outside the enum", code: "unsupported_grant_type", desc: api.GrantTypeJWTBearer},
		{name: "no assertion", node: ec, form: url.Values{"grant_type": {api.GrantTypeJWTBearer}},
			invalid: "assertion missing", code: "invalid_request", desc: "assertion missing"},
		{name: "not a JWT", node: ec, form: url.Values{"grant_type": {api.GrantTypeJWTBearer}, "assertion": {"hello"}},
			invalid: "assertion is not a JWT", code: "invalid_grant", desc: "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.form
			if form == nil {
				a := ""
				if tc.sign != nil {
					a = tc.sign()
				} else {
					a = tc.node.assertion(tc.edit)
				}
				form = grant(a)
			}
			if tc.code == "" {
				var tr api.TokenResponse
				resp := tc.node.mustDo(cpReq{method: "POST", path: api.PathToken, body: form}, http.StatusOK, &tr)
				if tr.TokenType != "Bearer" || tr.ExpiresIn != 600 || resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("got %+v, Cache-Control %q", tr, resp.Header.Get("Cache-Control"))
				}
				// The token works for the device's own calls.
				tc.node.mustDo(cpReq{method: "GET", path: api.DevicePath(api.PathIoTCredentials, tc.node.id), bearer: tr.AccessToken}, http.StatusOK, nil)
				return
			}
			var e api.OAuthError
			tc.node.mustDo(cpReq{method: "POST", path: api.PathToken, body: form, invalid: tc.invalid}, http.StatusBadRequest, &e)
			if e.Code != tc.code || !strings.Contains(e.Description, tc.desc) {
				t.Errorf("got %+v, want %s containing %q", e, tc.code, tc.desc)
			}
		})
	}
	if st := cp.Stats(); st.TokensIssued != 6 {
		t.Errorf("TokensIssued = %d, want 6", st.TokensIssued)
	}
}

func TestControlPlaneBearer(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{})
	n := enrollNode(t, cp, nil)
	other := enrollNode(t, cp, nil)
	tok := n.token()
	otherTok := other.token()
	path := api.DevicePath(api.PathIoTCredentials, n.id)
	strangerKey, stranger, err := cp.opts.CA.Issue(n.id, nil, time.Hour) // right CN, another key
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		client  *cpClient
		bearer  string
		path    string
		invalid string
		status  int
	}{
		{name: "good", bearer: tok, path: path, status: 200},
		{name: "good with own certificate", client: n.withCert(n.cert, nil), bearer: tok, path: path, status: 200},
		{name: "no token", path: path, invalid: "no bearer token", status: 401},
		{name: "garbage token", bearer: "abc.def.ghi", path: path, status: 401},
		{name: "user token", bearer: mustUserToken(t, cp), path: path, status: 401},
		{name: "another device's token", bearer: otherTok, path: path, status: 403},
		{name: "another device's path", bearer: tok, path: api.DevicePath(api.PathIoTCredentials, other.id), status: 403},
		{name: "another device's certificate", client: n.withCert(other.cert, other.key), bearer: tok, path: path, status: 403},
		{name: "certificate with the right CN but another key", client: n.withCert(stranger, strangerKey), bearer: tok, path: path, status: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client
			if c == nil {
				c = n.cpClient
			}
			var e api.Error
			resp := c.mustDo(cpReq{method: "GET", path: tc.path, bearer: tc.bearer, invalid: tc.invalid}, tc.status, &e)
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func mustUserToken(t *testing.T, cp *ControlPlane) string {
	t.Helper()
	s, err := cp.MintUserToken(api.User{ID: "alice", Directory: "corp"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestControlPlaneJWKS(t *testing.T) {
	cp := newTestControlPlane(t, ControlPlaneOptions{})
	c := newCPClient(t, cp, nil)
	u := api.User{ID: "alice", Directory: "corp", Groups: []string{"analysts"}, Attributes: map[string][]string{"dept": {"sales"}}}
	tok, err := cp.MintUserToken(u, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	resp := c.mustDo(cpReq{method: "GET", path: api.PathJWKS}, http.StatusOK, &set)
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control %q, want a max-age", cc)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("key %s is not public", k.KeyID)
		}
	}

	// Verify with go-jose, the key picked by kid.
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the set", jws.Signatures[0].Header.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("user token does not verify with the JWKS key: %v", err)
	}
	var claims struct {
		Sub        string              `json:"sub"`
		Iss        string              `json:"iss"`
		Aud        any                 `json:"aud"`
		Exp        int64               `json:"exp"`
		Iat        int64               `json:"iat"`
		Directory  string              `json:"directory"`
		Groups     []string            `json:"groups"`
		Attributes map[string][]string `json:"attributes"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Sub != "alice" || claims.Iss != cp.URL() || claims.Directory != "corp" || len(claims.Groups) != 1 || claims.Attributes["dept"][0] != "sales" {
		t.Errorf("claims %+v", claims)
	}
	// And with golang-jwt, as a node would: audience and expiry.
	_, err = jwt.Parse(tok, func(t *jwt.Token) (any, error) { return keys[0].Key, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(UserTokenAudience), jwt.WithIssuer(cp.URL()), jwt.WithExpirationRequired())
	if err != nil {
		t.Errorf("user token: %v", err)
	}
}
