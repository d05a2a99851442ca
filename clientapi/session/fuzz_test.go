package session

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/testkit"
)

// FuzzSessionInputs feeds the session solution arbitrary Cookie headers,
// methods and CSRF headers, and the store arbitrary revocation ids: none
// panics, and only a request carrying the real token is authenticated.
func FuzzSessionInputs(f *testing.F) {
	for _, seed := range []struct{ cookie, method, csrf, id string }{
		{"edgefort-session-hub=abc", "GET", "", "0123456789ab"},
		{"edgefort-session-hub=; edgefort-session-hub=x", "POST", "x", "zz"},
		{"a=b; edgefort-session-hub=" + strings.Repeat("A", 70), "DELETE", "", strings.Repeat("f", 65)},
		{"edgefort-session-hub=\"quoted\"", "PUT", "\x00", ""},
	} {
		f.Add(seed.cookie, seed.method, seed.csrf, seed.id)
	}
	st, err := Open(testkit.OpenStore(f, ""), Options{})
	if err != nil {
		f.Fatal(err)
	}
	token, _, err := st.Create("hub", auth.Identity{UserID: "alice", Directory: "corp"}, Limits{IdleTimeout: DefaultIdleTimeout, AbsoluteTimeout: DefaultAbsoluteTimeout})
	if err != nil {
		f.Fatal(err)
	}
	sol, err := NewSolution(Config{}, "hub", true, st, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cookie, method, csrf, id string) {
		r, err := http.NewRequest(http.MethodGet, "https://hub.example/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Method = method
		r.Header.Set("Cookie", cookie)
		r.Header.Set(HeaderCSRF, csrf)
		res := sol.Authenticate(r)
		if res.Outcome == auth.Authenticated && !strings.Contains(cookie, token) {
			t.Fatalf("authenticated without the token: cookie %q", cookie)
		}
		if len(id) < minRevokeLen {
			if _, err := st.Revoke(id); err == nil {
				t.Fatalf("revoke %q: no error", id)
			}
		}
	})
}
