package clientapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// stampMinter stands for clientapi/backendjwt: its token names the user.
type stampMinter struct{ fail bool }

func (m stampMinter) Mint(id auth.Identity) (string, error) {
	if m.fail {
		return "", errors.New("signing key gone")
	}
	return "signed-for-" + id.UserID, nil
}
func (stampMinter) Header() string { return "X-Edgefort-Identity" }
func (stampMinter) JWKS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"keys":[]}`) })
}

// TestIdentityToken: with identity.jwt set, the backend gets the node's
// token, never the client's, and the virtual host serves the JWKS; a
// token that cannot be minted fails the request without reaching the
// backend.
func TestIdentityToken(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("mint fails %v", fail), func(t *testing.T) {
			r := newRig(t)
			r.authz.permit("alice app.read app/sales/a1")
			cfg := routeTo(r.backend(t, "engine", echo()), time.Minute)
			cfg.VirtualHosts[0].Identity.JWT = IdentityJWT{Keystore: "node"}
			deps := r.deps()
			var gotCfg IdentityJWT
			deps.IdentityMinter = func(c IdentityJWT) (IdentityMinter, error) { gotCfg = c; return stampMinter{fail: fail}, nil }
			srv, err := New(cfg, deps)
			if err != nil {
				t.Fatal(err)
			}
			addTokens(srv.hosts)
			runServer(t, srv)
			if gotCfg.Header != DefaultIdentityJWTHeader || gotCfg.TTL != DefaultIdentityJWTTTL {
				t.Errorf("minter built from %+v, want the defaults filled in", gotCfg)
			}
			base := srv.URLs()["hub"]
			req, _ := http.NewRequest("GET", base+"/x", nil)
			req.Header.Set("Authorization", "Bearer alice-token")
			req.Header.Set("X-Edgefort-Identity", "forged-by-client")
			resp, err := r.client("", false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if fail {
				if resp.StatusCode != 500 || !strings.Contains(string(body), "identity_unavailable") || strings.Contains(string(body), "signing key") {
					t.Fatalf("%d %s, want 500 identity_unavailable without detail", resp.StatusCode, body)
				}
				return
			}
			var s seen
			json.Unmarshal(body, &s)
			if got := s.Header.Values("X-Edgefort-Identity"); len(got) != 1 || got[0] != "signed-for-alice" {
				t.Errorf("backend identity token %q, want the node's only", got)
			}
			jwks, err := r.client("", false).Get(base + "/.well-known/jwks.json")
			if err != nil {
				t.Fatal(err)
			}
			defer jwks.Body.Close()
			if b, _ := io.ReadAll(jwks.Body); jwks.StatusCode != 200 || string(b) != `{"keys":[]}` {
				t.Errorf("JWKS %d %s", jwks.StatusCode, b)
			}
		})
	}
}

// TestTrustedProxy: a trusted peer's X-Forwarded-For and Forwarded are
// kept and extended, and the rate limit applies to the client it names.
func TestTrustedProxy(t *testing.T) {
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	cfg := routeTo(r.backend(t, "engine", echo()), time.Minute)
	cfg.VirtualHosts[0].TrustedProxies = []string{"127.0.0.1/32"}
	cfg.VirtualHosts[0].FailedAuthLimit = RateLimit{PerSecond: 0.001, Burst: 1}
	srv := r.start(t, cfg)
	do := func(xff, token string) (int, seen) {
		req, _ := http.NewRequest("GET", srv.URLs()["hub"]+"/", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("Forwarded", "for="+xff)
		resp, err := r.client("", false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s seen
		json.NewDecoder(resp.Body).Decode(&s)
		return resp.StatusCode, s
	}
	code, s := do("203.0.113.7", "alice-token")
	if code != 200 || s.Header.Get("X-Forwarded-For") != "203.0.113.7, 127.0.0.1" || s.Header.Get("Forwarded") != "for=203.0.113.7, for=127.0.0.1;host=\"127.0.0.1:"+strings.Split(srv.URLs()["hub"], ":")[2]+"\";proto=https" {
		t.Errorf("%d, backend saw X-Forwarded-For %q, Forwarded %q", code, s.Header.Get("X-Forwarded-For"), s.Header.Get("Forwarded"))
	}
	var got []int
	for _, c := range []struct{ xff, token string }{{"203.0.113.7", "forged"}, {"203.0.113.7", "alice-token"}, {"203.0.113.8", "alice-token"}} {
		code, _ := do(c.xff, c.token)
		got = append(got, code)
	}
	if fmt.Sprint(got) != "[401 429 200]" {
		t.Errorf("statuses %v, want [401 429 200]: the limit follows the forwarded client", got)
	}
}
