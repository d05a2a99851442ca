package clientapi

import (
	"html"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/oidcauth"
	"github.com/edgefort/edgefort/clientapi/samlauth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/testkit"
)

var chooserLink = regexp.MustCompile(`<a href="([^"]*)">([^<]*)</a>`)

// chooserRig is a TLS virtual host with the given interactive logins and
// a route /app/; it returns the server's URL and a client that does not
// follow redirects.
func chooserRig(t *testing.T, logins ...Solution) (string, *http.Client) {
	t.Helper()
	r := newRig(t)
	engine := r.backend(t, "engine", echo())
	vh := tlsHost("hub")
	vh.Authentication = append([]Solution{{Session: &session.Config{}}}, logins...)
	vh.Routes = []Route{{Name: "app", Match: "/app/", Target: "engine", Action: "read", Resource: Resource{Type: "app", ID: "x"}}}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	srv, err := New(Config{VirtualHosts: []VirtualHost{vh}, TargetEndpoints: []TargetEndpoint{engine}}, deps)
	must(t, err)
	runServer(t, srv)
	hc := r.client("", false)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return srv.URLs()["hub"], hc
}

// A virtual host with two SAML IdPs and an OpenID provider sends a
// browser without credentials to the chooser page, which lists each by
// its display name (HTML-escaped) with a link to its login that keeps
// return_to, under a CSP without script; the links start the logins. A
// return_to off the virtual host is refused. With one IdP the browser
// goes straight to it.
func TestLoginChooser(t *testing.T) {
	md := filepath.Join(t.TempDir(), "idp.xml")
	must(t, os.WriteFile(md, []byte(testIDPMetadata(t)), 0o600))
	corp := &samlauth.Config{Name: "corp", DisplayName: `Corp <IdP> & "co"`, BaseURL: samlNode, IDPMetadataFile: md}
	partner := &samlauth.Config{Name: "partner", BaseURL: samlNode, IDPMetadataFile: md, PathPrefix: "/.edgefort/saml-partner"}
	oidc := &oidcauth.Config{DisplayName: "Example ID", Issuer: "https://127.0.0.1:9", ClientID: "edge", ClientSecret: "s",
		RequireEncryption: new(bool)}
	base, hc := chooserRig(t, Solution{SAML: corp}, Solution{SAML: partner}, Solution{OIDC: oidc})

	for _, start := range []string{"/app/x?y=1", SignInPath + "?return_to=%2Fapp%2Fx%3Fy%3D1"} {
		resp, body := samlDo(t, hc, "GET", base+start, nil, "Accept", "text/html")
		if want := PathLoginChooser + "?return_to=%2Fapp%2Fx%3Fy%3D1"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Fatalf("GET %s: %d Location %q %s, want 303 to %s", start, resp.StatusCode, resp.Header.Get("Location"), body, want)
		}
	}
	resp, body := samlDo(t, hc, "GET", base+PathLoginChooser+"?return_to=%2Fapp%2Fx%3Fy%3D1", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("chooser: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("chooser CSP %q, want default-src 'none' and no script source", csp)
	}
	if strings.Contains(strings.ToLower(body), "<script") || strings.Contains(body, `<IdP>`) {
		t.Errorf("the chooser carries a script or an unescaped display name:\n%s", body)
	}
	var got [][2]string
	for _, m := range chooserLink.FindAllStringSubmatch(body, -1) {
		got = append(got, [2]string{html.UnescapeString(m[2]), html.UnescapeString(m[1])})
	}
	want := [][2]string{
		{`Corp <IdP> & "co"`, "/.edgefort/saml/login?return_to=%2Fapp%2Fx%3Fy%3D1"},
		{"partner", "/.edgefort/saml-partner/login?return_to=%2Fapp%2Fx%3Fy%3D1"},
		{"Example ID", oidcauth.DefaultLoginPath + "?return_to=%2Fapp%2Fx%3Fy%3D1"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("chooser links (-want +got):\n%s\n%s", d, body)
	}
	for _, l := range want[:2] {
		resp, body := samlDo(t, hc, "GET", base+l[1], nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "https://idp.example/sso?SAMLRequest=") {
			t.Errorf("%s's link: %d Location %q %s, want 303 to its IdP", l[0], resp.StatusCode, loc, body)
		}
	}
	for _, bad := range []string{"%2F%2Fevil.example%2F", "https%3A%2F%2Fevil.example%2F", "%2F%5Cevil.example", "%2F.edgefort%2Flogin"} {
		resp, body := samlDo(t, hc, "GET", base+PathLoginChooser+"?return_to="+bad, nil)
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "evil") {
			t.Errorf("chooser with return_to=%s: %d %s, want 400", bad, resp.StatusCode, body)
		}
	}

	t.Run("one IdP", func(t *testing.T) {
		base, hc := chooserRig(t, Solution{SAML: &samlauth.Config{BaseURL: samlNode, IDPMetadataFile: md}})
		resp, body := samlDo(t, hc, "GET", base+"/app/x", nil, "Accept", "text/html")
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "https://idp.example/sso?") {
			t.Errorf("GET /app/x: %d Location %q %s, want 303 straight to the IdP", resp.StatusCode, loc, body)
		}
		resp, body = samlDo(t, hc, "GET", base+PathLoginChooser+"?return_to=%2Fapp%2Fx", nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/.edgefort/saml/login?return_to=%2Fapp%2Fx" {
			t.Errorf("chooser with one IdP: %d Location %q %s, want 303 to its login", resp.StatusCode, loc, body)
		}
	})
}
