package jwtauth

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
)

// FuzzAuthenticate feeds Authenticate arbitrary Authorization headers and
// cookies, seeded with the attack corpus and a valid token. It must never
// panic, and must never authenticate a request whose token is not signed
// by the configured key, as an independent implementation (go-jose)
// checks.
func FuzzAuthenticate(f *testing.F) {
	key := testKeys()[0]
	clk := newClock()
	cfg := baseConfig()
	cfg.KeyFiles = []string{writeKeyFile(f, key)}
	cfg.Cookie = "edge_token"
	cfg.Algorithms = []string{"RS256", "PS256", "ES256"}
	s := newTestSolution(f, cfg, clk, nil)
	st := setup(key, thumbprint(f, key), clk)
	st.Cookie = cfg.Cookie
	valid := jwttest.Valid(f, st)
	f.Add("Bearer "+valid, "")
	f.Add("", valid)
	f.Add("Basic "+valid, valid)
	for _, c := range jwttest.Corpus(f, st) {
		authz, cookie := "", ""
		if len(c.Authorization) > 0 {
			authz = c.Authorization[0]
		}
		if len(c.Cookies) > 0 {
			cookie = c.Cookies[0].Value
		}
		f.Add(authz, cookie)
	}
	f.Fuzz(func(t *testing.T, authz, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "https://node.test/", nil)
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		if cookie != "" {
			r.Header["Cookie"] = []string{cfg.Cookie + "=" + cookie}
		}
		res := s.Authenticate(r)
		switch res.Outcome {
		case auth.Authenticated:
			if res.Identity.UserID == "" {
				t.Errorf("authenticated without a user id")
			}
			_, tok, _ := strings.Cut(authz, " ")
			if !signedBy(strings.TrimLeft(tok, " "), key) && !signedBy(cookie, key) {
				t.Errorf("authenticated a request whose token go-jose does not verify with the configured key: Authorization %q, cookie %q", authz, cookie)
			}
		case auth.Refused:
			if res.Reason == "" || res.Err == nil {
				t.Errorf("refused without reason or error: %+v", res)
			}
		case auth.NoCredentials:
		default:
			t.Errorf("outcome %v", res.Outcome)
		}
	})
}

func signedBy(token string, key interface{ Public() crypto.PublicKey }) bool {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256})
	if err != nil {
		return false
	}
	_, err = jws.Verify(key.Public())
	return err == nil
}
