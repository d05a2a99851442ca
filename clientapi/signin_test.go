package clientapi

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// moduleSolution stands for an interactive solution (a ticket module): it
// finds no credentials itself and sends browsers to its login page with
// the URL to come back to.
type moduleSolution struct{}

func (moduleSolution) Kind() string { return "ticket" }
func (moduleSolution) Name() string { return "module" }
func (moduleSolution) Authenticate(*http.Request) auth.Result {
	return auth.Result{Outcome: auth.NoCredentials}
}

func (moduleSolution) Challenge(r *http.Request) (string, bool) {
	return "https://login.example/auth?target=" + url.QueryEscape("https://"+r.Host+r.URL.RequestURI()), true
}

var _ auth.Challenger = moduleSolution{}

// TestSignIn: the sign-in link sends the browser (303) to the chain's
// interactive solution with the page to come back to, on this virtual
// host; a return_to that could lead elsewhere is refused (400); a chain
// without an interactive solution answers 404 and says so.
func TestSignIn(t *testing.T) {
	r := newRig(t)
	cfg := headerConfig(r.backend(t, "engine", echo()))
	srv, err := New(cfg, r.deps())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range srv.hosts {
		h.chain.solutions = append(h.chain.solutions, moduleSolution{})
	}
	runServer(t, srv)
	withModule := srv.URLs()["hub"]
	tokensOnly := r.start(t, routeTo(r.backend(t, "engine", echo()), 0)).URLs()["hub"]
	login := func(target string) string {
		return "https://login.example/auth?target=" + url.QueryEscape("https://hub.example"+target)
	}
	tests := []struct {
		name     string
		base     string
		query    string // raw query of the sign-in request
		code     int
		location string
		reason   string
	}{
		{"back to the page", withModule, "return_to=" + url.QueryEscape("/public/report?sheet=2"), 303, login("/public/report?sheet=2"), ""},
		{"no return_to: the root", withModule, "", 303, login("/"), ""},
		{"encoded path kept as sent", withModule, "return_to=" + url.QueryEscape("/public/a%20b"), 303, login("/public/a%20b"), ""},
		{"fragment dropped", withModule, "return_to=" + url.QueryEscape("/public/x#top"), 303, login("/public/x"), ""},
		{"another host, scheme-relative", withModule, "return_to=" + url.QueryEscape("//evil.com/x"), 400, "", ReasonBadReturnTo},
		{"another host, backslash", withModule, "return_to=" + url.QueryEscape(`/\evil.com`), 400, "", ReasonBadReturnTo},
		{"another host, absolute", withModule, "return_to=" + url.QueryEscape("https://evil.com/"), 400, "", ReasonBadReturnTo},
		{"another host, encoded slashes", withModule, "return_to=" + url.QueryEscape("/%2F%2Fevil.com"), 400, "", ReasonBadReturnTo},
		{"another host, encoded backslash", withModule, "return_to=" + url.QueryEscape("/%5Cevil.com"), 400, "", ReasonBadReturnTo},
		{"another host, double-encoded query", withModule, "return_to=%252F%252Fevil.com", 400, "", ReasonBadReturnTo},
		{"another host, tab the browser drops", withModule, "return_to=" + url.QueryEscape("/\t/evil.com"), 400, "", ReasonBadReturnTo},
		{"javascript URL", withModule, "return_to=" + url.QueryEscape("javascript:alert(1)"), 400, "", ReasonBadReturnTo},
		{"relative without a slash", withModule, "return_to=evil.com", 400, "", ReasonBadReturnTo},
		{"the node's own path", withModule, "return_to=" + url.QueryEscape(SignInPath), 400, "", ReasonBadReturnTo},
		{"given twice", withModule, "return_to=/a&return_to=/b", 400, "", ReasonBadReturnTo},
		{"no interactive solution", tokensOnly, "return_to=/x", 404, "", ReasonNoInteractive},
	}
	client := r.client("", false)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.base+SignInPath+"?"+tt.query, nil)
			req.Host = "hub.example"
			req.Header.Set("Accept", "text/html")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.code)
			}
			if got := resp.Header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if tt.reason != "" {
				code, reason, _ := hubCall{path: SignInPath + "?" + tt.query}.do(t, r, tt.base)
				if code != tt.code || reason != tt.reason {
					t.Errorf("body says %d %q, want %q", code, reason, tt.reason)
				}
			}
		})
	}
}
