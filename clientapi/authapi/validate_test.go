package authapi

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/keystore"
)

// portal is a TLS validation endpoint (certificate portal.example from
// the rig's CA) that knows one token; it counts the calls.
type portal struct {
	url   string
	calls atomic.Int32
	down  atomic.Bool
}

const portalToken = "portal-token-0123456789abcdefghij"

func newPortal(t *testing.T, r *rig) *portal {
	p := &portal{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p.calls.Add(1)
		var body struct {
			SessionID string `json:"session_id"`
		}
		switch {
		case p.down.Load():
			w.WriteHeader(http.StatusBadGateway)
		case req.Method != "POST" || json.NewDecoder(req.Body).Decode(&body) != nil:
			w.WriteHeader(http.StatusBadRequest)
		case body.SessionID == portalToken:
			json.NewEncoder(w).Encode(UserRequest{UserID: "carol", UserDirectory: "portal", Groups: []string{"ops"}})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{r.ca.tlsCert(t, "portal.example")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.url = srv.URL + "/validate"
	return p
}

// TestSessionValidationEndpoint: with a validation_url the portal decides,
// over TLS verified against the truststore; answers are reused for
// validation_cache, a DELETE through the API ends a cached one at once, and
// a portal that cannot answer refuses the request.
func TestSessionValidationEndpoint(t *testing.T) {
	r := newRig(t, nil)
	p := newPortal(t, r)
	on := true
	sol, err := r.api.SessionModuleSolution(SessionModuleConfig{Cookie: "portal_session", ValidationURL: p.url,
		ValidationSSL: keystore.SSL{Enabled: &on, Truststore: "modules", CommonName: "portal.example"}}, "hub")
	must(t, err)

	want := auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: "carol", Directory: "portal", Groups: []string{"ops"}, Solution: "session_module"}}
	for range 3 {
		if diff := cmp.Diff(want, sol.Authenticate(withCookie(portalToken))); diff != "" {
			t.Fatalf("valid token (-want +got):\n%s", diff)
		}
	}
	if n := p.calls.Load(); n != 1 {
		t.Errorf("portal asked %d times for 3 requests within the cache time, want 1", n)
	}
	if res := sol.Authenticate(withCookie("unknown-token-0123456789abcdefghij")); res.Outcome != auth.Refused || res.Reason != "session_unknown" {
		t.Errorf("unknown token: %v %q, want refused session_unknown", res.Outcome, res.Reason)
	}

	if code := r.call(t, r.client, "DELETE", "/v1/sessions/"+portalToken, nil, nil); code != http.StatusNoContent {
		t.Errorf("DELETE of a cached token: %d, want 204", code)
	}
	p.down.Store(true)
	if res := sol.Authenticate(withCookie(portalToken)); res.Outcome != auth.Refused || res.Reason != reasonUnavailable {
		t.Errorf("portal down after the DELETE: %v %q, want refused %s", res.Outcome, res.Reason, reasonUnavailable)
	}
	p.down.Store(false)
	r.clock.add(DefaultValidationCacheTTL)
	if res := sol.Authenticate(withCookie(portalToken)); res.Outcome != auth.Authenticated {
		t.Errorf("portal back: %v %q, want authenticated", res.Outcome, res.Reason)
	}
	if n := p.calls.Load(); n != 4 {
		t.Errorf("portal asked %d times, want 4 (first, unknown, down, back)", n)
	}
}

// TestSessionValidationTLS: a portal whose certificate the truststore
// does not trust is never asked; the request is refused.
func TestSessionValidationTLS(t *testing.T) {
	r := newRig(t, nil)
	p := newPortal(t, r)
	on := true
	sol, err := r.api.SessionModuleSolution(SessionModuleConfig{Cookie: "portal_session", ValidationURL: p.url,
		ValidationSSL: keystore.SSL{Enabled: &on, Truststore: "modules", CommonName: "other.example"}}, "hub")
	must(t, err)
	if res := sol.Authenticate(withCookie(portalToken)); res.Outcome != auth.Refused || res.Reason != reasonUnavailable {
		t.Errorf("portal with the wrong name: %v %q, want refused %s", res.Outcome, res.Reason, reasonUnavailable)
	}
	if n := p.calls.Load(); n != 0 {
		t.Errorf("portal answered %d calls, want 0", n)
	}
}
