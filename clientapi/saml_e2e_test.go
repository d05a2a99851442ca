package clientapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"html"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/samlauth"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// samlNode is the name and port browsers reach the node's virtual host
// at (its base_url); the rig's client dials the real loopback address for
// it, as a name in /etc/hosts and a port forward would.
const samlNode = "https://hub.example:8443"

// samlRig is the node with a SAML solution whose IdP is samlify
// (internal/peertest/testdata/samlify/idp.js) on loopback, a route /app/
// to an echo backend alice may read, and a browser-like client that does
// not follow redirects by itself.
type samlRig struct {
	*rig
	srv *Server
	idp string // the IdP's base URL
	hc  *http.Client
}

// samlOptions vary the rig.
type samlOptions struct {
	allowIDPInitiated bool
	// strict: the node signs its AuthnRequests and decrypts assertions
	// with an RSA key of keystore "saml", and the IdP requires the one and
	// does the other.
	strict bool
	// singleLogout: single logout on, the node's logout messages signed
	// with the RSA key of keystore "saml".
	singleLogout bool
}

func newSAMLRig(t *testing.T, o samlOptions) *samlRig {
	t.Helper()
	node, dir := peertest.Samlify(t)
	tmp := t.TempDir()
	writeRSAPair(t, filepath.Join(tmp, "idp"))
	writeRSAPair(t, filepath.Join(tmp, "other"))
	writeRSAPair(t, filepath.Join(tmp, "sp"))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "idp.js"),
		filepath.Join(tmp, "idp-key.pem"), filepath.Join(tmp, "idp-cert.pem"),
		filepath.Join(tmp, "other-key.pem"), filepath.Join(tmp, "other-cert.pem"), map[bool]string{true: "strict"}[o.strict])
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("samlify IdP did not start: %v", err)
	}
	idp, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("samlify IdP: %q", line)
	}

	r := newRig(t)
	engine := r.backend(t, "engine", echo())
	vh := tlsHost("hub")
	sc := &samlauth.Config{
		BaseURL: samlNode, IDPMetadataURL: idp + "/metadata", AllowIDPInitiated: o.allowIDPInitiated,
		Attributes: samlauth.Attributes{UserID: "uid", Directory: "dir", Groups: "groups"},
	}
	if o.strict || o.singleLogout {
		key, cert := readRSAPair(t, filepath.Join(tmp, "sp"))
		must(t, r.stores.CreateStore("saml", keystore.KindKeystore))
		must(t, r.stores.PutEntry("saml", "sp", key, []*x509.Certificate{cert}))
		sc.Keystore, sc.KeyAlias, sc.SignRequests, sc.SingleLogout = "saml", "sp", o.strict, o.singleLogout
	}
	vh.Authentication = []Solution{{Session: &session.Config{}}, {SAML: sc}}
	vh.Routes = []Route{{Name: "app", Match: "/app/", Target: "engine", Action: "read", Resource: Resource{Type: "app", ID: "x"}}}
	r.authz.permit("alice read app//x")
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	srv, err := New(Config{VirtualHosts: []VirtualHost{vh}, TargetEndpoints: []TargetEndpoint{engine}}, deps)
	must(t, err)
	runServer(t, srv)
	real, err := url.Parse(srv.URLs()["hub"])
	must(t, err)
	hc := r.client("", false)
	tr := hc.Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "hub.example:8443" {
			addr = real.Host
		}
		return dial(ctx, network, addr)
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	// The IdP learns the SP from the metadata the node serves.
	resp, body := samlDo(t, hc, "GET", samlNode+"/.edgefort/saml/metadata", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SP metadata: %d %s", resp.StatusCode, body)
	}
	resp, body = samlDo(t, hc, "POST", idp+"/sp", strings.NewReader(body))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("IdP /sp: %d %s", resp.StatusCode, body)
	}
	return &samlRig{rig: r, srv: srv, idp: idp, hc: hc}
}

// writeRSAPair writes prefix-key.pem and prefix-cert.pem: an RSA 2048 key
// and its self-signed certificate.
func writeRSAPair(t *testing.T, prefix string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: filepath.Base(prefix)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	must(t, err)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(prefix+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600))
	must(t, os.WriteFile(prefix+"-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
}

func readRSAPair(t *testing.T, prefix string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	kb, err := os.ReadFile(prefix + "-key.pem")
	must(t, err)
	cb, err := os.ReadFile(prefix + "-cert.pem")
	must(t, err)
	kblock, _ := pem.Decode(kb)
	cblock, _ := pem.Decode(cb)
	key, err := x509.ParsePKCS8PrivateKey(kblock.Bytes)
	must(t, err)
	cert, err := x509.ParseCertificate(cblock.Bytes)
	must(t, err)
	return key.(*rsa.PrivateKey), cert
}

func samlDo(t *testing.T, hc *http.Client, method, u string, body io.Reader, kv ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	must(t, err)
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := hc.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// toIdP is the browser opening /app/x without a session: the node sends
// it to the IdP with an AuthnRequest; the user, signed in there, picks
// how the answer comes back (binding) and the test IdP how it is made
// (variant). It returns the IdP's answer.
func (s *samlRig) toIdP(t *testing.T, binding, variant string) (*http.Response, string) {
	t.Helper()
	resp, body := samlDo(t, s.hc, "GET", samlNode+"/app/x", nil, "Accept", "text/html")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, s.idp+"/sso?") || !strings.Contains(loc, "SAMLRequest=") {
		t.Fatalf("GET /app/x: %d Location %q %s, want 303 to the IdP with a SAMLRequest", resp.StatusCode, loc, body)
	}
	return samlDo(t, s.hc, "GET", loc+"&binding="+binding+"&variant="+variant, nil)
}

var (
	formAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	formInput  = regexp.MustCompile(`<input type="hidden" name="(SAMLResponse|RelayState)" value="([^"]*)"`)
)

// postForm reads the IdP's auto-submitting form: the ACS URL, the
// response XML and the RelayState.
func postForm(t *testing.T, body string) (action string, xml []byte, relay string) {
	t.Helper()
	m := formAction.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form in the IdP's page: %s", body)
	}
	action = html.UnescapeString(m[1])
	for _, in := range formInput.FindAllStringSubmatch(body, -1) {
		v := html.UnescapeString(in[2])
		if in[1] == "RelayState" {
			relay = v
			continue
		}
		var err error
		xml, err = base64.StdEncoding.DecodeString(v)
		must(t, err)
	}
	if xml == nil {
		t.Fatalf("no SAMLResponse in the IdP's form: %s", body)
	}
	return action, xml, relay
}

// submit is the browser posting the form to the ACS.
func (s *samlRig) submit(t *testing.T, action string, xml []byte, relay string) (*http.Response, string) {
	t.Helper()
	form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(xml)}, "RelayState": {relay}}
	return samlDo(t, s.hc, "POST", action, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

// loggedIn checks a 303 back to /app/x with the session cookie, and that
// the backend then sees alice of corp in users and staff.
func (s *samlRig) loggedIn(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	sc := resp.Header.Values("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/x" || len(sc) != 1 {
		t.Fatalf("ACS: %d Location %q cookies %q %s, want 303 to /app/x with one cookie", resp.StatusCode, resp.Header.Get("Location"), sc, body)
	}
	app, body := samlDo(t, s.hc, "GET", samlNode+"/app/x", nil, "Cookie", strings.Split(sc[0], ";")[0])
	if app.StatusCode != http.StatusOK {
		t.Fatalf("GET /app/x with the session: %d %s", app.StatusCode, body)
	}
	var got seen
	must(t, json.Unmarshal([]byte(body), &got))
	want := []string{"alice", "corp", "users,staff"}
	if d := cmp.Diff(want, []string{got.Header.Get(DefaultUserIDHeader), got.Header.Get(DefaultDirectoryHeader), got.Header.Get(DefaultGroupsHeader)}); d != "" {
		t.Errorf("the backend saw (-want +got):\n%s", d)
	}
}

// refused checks a 401 with reason and no cookie, and that no session
// exists.
func (s *samlRig) refused(t *testing.T, resp *http.Response, body, reason string) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, reason) {
		t.Errorf("ACS: %d %s, want 401 %s", resp.StatusCode, body, reason)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("a refused response set cookies %q", sc)
	}
	if n := len(s.srv.Sessions().List()); n != 0 {
		t.Errorf("%d sessions exist after a refused response, want 0", n)
	}
}

// Alice logs in through samlify with the response over HTTP-POST and
// over HTTP-Redirect, and the proxied backend sees her.
func TestSAMLLogin(t *testing.T) {
	s := newSAMLRig(t, samlOptions{})
	t.Run("post", func(t *testing.T) {
		resp, body := s.toIdP(t, "post", "ok")
		action, xml, relay := postForm(t, body)
		if action != samlNode+"/.edgefort/saml/acs" {
			t.Fatalf("the IdP posts to %q, want the node's ACS", action)
		}
		resp, body = s.submit(t, action, xml, relay)
		s.loggedIn(t, resp, body)
	})
	t.Run("login path", func(t *testing.T) {
		resp, body := samlDo(t, s.hc, "GET", samlNode+"/.edgefort/saml/login?return_to=%2Fapp%2Fx", nil)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, s.idp+"/sso?") {
			t.Fatalf("login path: %d Location %q %s, want 303 to the IdP", resp.StatusCode, loc, body)
		}
		_, page := samlDo(t, s.hc, "GET", loc+"&binding=post&variant=ok", nil)
		action, xml, relay := postForm(t, page)
		resp, body = s.submit(t, action, xml, relay)
		s.loggedIn(t, resp, body)
		resp, body = samlDo(t, s.hc, "GET", samlNode+"/.edgefort/saml/login?return_to=%2F%2Fevil.example%2F", nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("login path to another host: %d %s, want 400", resp.StatusCode, body)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		resp, body := s.toIdP(t, "redirect", "ok")
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, samlNode+"/.edgefort/saml/acs?") || !strings.Contains(loc, "&Signature=") {
			t.Fatalf("IdP: %d Location %q %s, want 302 to the ACS with a signed query", resp.StatusCode, loc, body)
		}
		resp, body = samlDo(t, s.hc, "GET", loc, nil)
		s.loggedIn(t, resp, body)
	})
}

var (
	dsSignature  = regexp.MustCompile(`(?s)<ds:Signature[ >].*?</ds:Signature>`)
	samlAssertn  = regexp.MustCompile(`(?s)<saml:Assertion .*?</saml:Assertion>`)
	assertionID  = regexp.MustCompile(`(<saml:Assertion [^>]*ID=")([^"]+)`)
	aliceUIDAttr = `<saml:AttributeValue xsi:type="xs:string">alice</saml:AttributeValue>`
)

// Every bad response is refused, and none opens a session.
func TestSAMLRefused(t *testing.T) {
	s := newSAMLRig(t, samlOptions{})
	tamper := func(f func(string) string) func(*testing.T, []byte) []byte {
		return func(t *testing.T, xml []byte) []byte {
			out := f(string(xml))
			if out == string(xml) {
				t.Fatalf("the tampering changed nothing in %s", xml)
			}
			return []byte(out)
		}
	}
	for _, c := range []struct {
		name, variant string
		change        func(*testing.T, []byte) []byte
		reason        string
	}{
		{name: "unsigned", variant: "ok", change: tamper(func(x string) string { return dsSignature.ReplaceAllString(x, "") }), reason: samlauth.ReasonUnsigned},
		{name: "wrong key", variant: "wrongkey", reason: samlauth.ReasonBadSignature},
		{name: "attribute altered after signing", variant: "ok", change: tamper(func(x string) string {
			return strings.Replace(x, aliceUIDAttr, strings.Replace(aliceUIDAttr, "alice", "mallory", 1), 1)
		}), reason: samlauth.ReasonBadSignature},
		{name: "signature wrapping", variant: "ok", change: tamper(wrapSignature), reason: samlauth.ReasonMalformed},
		{name: "signature wrapping in Advice", variant: "ok", change: tamper(wrapInAdvice), reason: samlauth.ReasonUnsigned},
		{name: "expired", variant: "expired", reason: samlauth.ReasonExpired},
		{name: "wrong audience", variant: "audience", reason: samlauth.ReasonAudience},
		{name: "wrong InResponseTo", variant: "inresponseto", reason: samlauth.ReasonInResponseTo},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, body := s.toIdP(t, "post", c.variant)
			action, xml, relay := postForm(t, body)
			if c.change != nil {
				xml = c.change(t, xml)
			}
			resp, body := s.submit(t, action, xml, relay)
			s.refused(t, resp, body, c.reason)
		})
	}
	t.Run("redirect with a bad query signature", func(t *testing.T) {
		resp, _ := s.toIdP(t, "redirect", "ok")
		u, err := url.Parse(resp.Header.Get("Location"))
		must(t, err)
		// Another RelayState than the one signed: the response and its
		// assertion's signature are intact, only the query signature fails.
		if n := strings.Count(u.RawQuery, "RelayState="); n != 1 {
			t.Fatalf("the IdP's query carries %d RelayState, want 1: %s", n, u.RawQuery)
		}
		u.RawQuery = regexp.MustCompile(`RelayState=[^&]*`).ReplaceAllString(u.RawQuery, "RelayState=x")
		resp, body := samlDo(t, s.hc, "GET", u.String(), nil)
		s.refused(t, resp, body, samlauth.ReasonBadSignature)
	})
	t.Run("replayed", func(t *testing.T) {
		_, body := s.toIdP(t, "post", "ok")
		action, xml, relay := postForm(t, body)
		resp, body := s.submit(t, action, xml, relay)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use: %d %s, want 303", resp.StatusCode, body)
		}
		for _, tok := range s.srv.Sessions().List() {
			_, err := s.srv.Sessions().Revoke(tok.ID)
			must(t, err)
		}
		// The same response again: its login is over. Under a new login's
		// RelayState: it answers another request.
		resp, body = s.submit(t, action, xml, relay)
		s.refused(t, resp, body, samlauth.ReasonUnsolicited)
		_, page := s.toIdP(t, "post", "ok")
		_, _, relay2 := postForm(t, page)
		resp, body = s.submit(t, action, xml, relay2)
		s.refused(t, resp, body, samlauth.ReasonInResponseTo)
	})
}

// wrapSignature is signature wrapping: a forged assertion for mallory is
// put first in the response, the genuine signed one after it, so that a
// verifier that checks one element and reads another would accept
// mallory.
func wrapSignature(x string) string {
	genuine := samlAssertn.FindString(x)
	forged := dsSignature.ReplaceAllString(genuine, "")
	forged = assertionID.ReplaceAllString(forged, "${1}_forged")
	forged = strings.Replace(forged, aliceUIDAttr, strings.Replace(aliceUIDAttr, "alice", "mallory", 1), 1)
	return strings.Replace(x, genuine, forged+genuine, 1)
}

// IdP-initiated logins (no AuthnRequest) are refused unless enabled;
// enabled, they land on the RelayState page only when it is a path of the
// virtual host, and a replayed response is refused by the assertion ids
// kept until they expire.
func TestSAMLIdPInitiated(t *testing.T) {
	initiate := func(t *testing.T, s *samlRig, relay string) (action string, xml []byte, gotRelay string) {
		t.Helper()
		resp, body := samlDo(t, s.hc, "GET", s.idp+"/initiate?relay="+url.QueryEscape(relay), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("IdP /initiate: %d %s", resp.StatusCode, body)
		}
		return postForm(t, body)
	}
	t.Run("disabled", func(t *testing.T) {
		s := newSAMLRig(t, samlOptions{})
		action, xml, relay := initiate(t, s, "/app/x")
		resp, body := s.submit(t, action, xml, relay)
		s.refused(t, resp, body, samlauth.ReasonUnsolicited)
	})
	t.Run("enabled", func(t *testing.T) {
		s := newSAMLRig(t, samlOptions{allowIDPInitiated: true})
		action, xml, relay := initiate(t, s, "/app/x")
		resp, body := s.submit(t, action, xml, relay)
		s.loggedIn(t, resp, body)
		for _, info := range s.srv.Sessions().List() {
			_, err := s.srv.Sessions().Revoke(info.ID)
			must(t, err)
		}
		resp, body = s.submit(t, action, xml, relay)
		s.refused(t, resp, body, samlauth.ReasonReplayed)

		for _, relay := range []string{"https://evil.example/app/x", "//evil.example/app/x", "/\\evil.example/"} {
			action, xml, relay := initiate(t, s, relay)
			resp, body = s.submit(t, action, xml, relay)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
				t.Errorf("RelayState %q: %d Location %q %s, want 303 to /", relay, resp.StatusCode, loc, body)
			}
		}
	})
}

// wrapInAdvice is signature wrapping the other way round: the forged
// assertion for mallory takes the genuine one's place and carries the
// genuine signed assertion inside its Advice, where a verifier that
// looks the signed element up by its ID would find it.
func wrapInAdvice(x string) string {
	genuine := samlAssertn.FindString(x)
	forged := dsSignature.ReplaceAllString(genuine, "")
	forged = assertionID.ReplaceAllString(forged, "${1}_forged")
	forged = strings.Replace(forged, aliceUIDAttr, strings.Replace(aliceUIDAttr, "alice", "mallory", 1), 1)
	forged = strings.Replace(forged, "</saml:Conditions>", "</saml:Conditions><saml:Advice>"+genuine+"</saml:Advice>", 1)
	return strings.Replace(x, genuine, forged, 1)
}

// With a keystore key, the node signs its AuthnRequests (samlify, told to
// require it, verifies them against the SP metadata's certificate) and
// decrypts the assertion samlify encrypts to that metadata's certificate.
func TestSAMLSignedRequestEncryptedAssertion(t *testing.T) {
	s := newSAMLRig(t, samlOptions{strict: true})
	resp, body := samlDo(t, s.hc, "GET", samlNode+"/app/x", nil, "Accept", "text/html")
	loc := resp.Header.Get("Location")
	if !strings.Contains(loc, "&SigAlg=") || !strings.Contains(loc, "&Signature=") {
		t.Fatalf("GET /app/x: %d Location %q %s, want a signed AuthnRequest", resp.StatusCode, loc, body)
	}
	resp, body = samlDo(t, s.hc, "GET", loc+"&binding=post&variant=ok", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the IdP refused the signed request: %d %s", resp.StatusCode, body)
	}
	action, xml, relay := postForm(t, body)
	if !strings.Contains(string(xml), "EncryptedAssertion") || samlAssertn.Match(xml) {
		t.Fatalf("the response carries no encrypted assertion, or a plain one: %s", xml)
	}
	resp, body = s.submit(t, action, xml, relay)
	s.loggedIn(t, resp, body)
}

// Two SAML solutions of a virtual host on the same paths are refused,
// not a panic.
func TestSAMLSamePathPrefix(t *testing.T) {
	r := newRig(t)
	md := filepath.Join(t.TempDir(), "idp.xml")
	must(t, os.WriteFile(md, []byte(testIDPMetadata(t)), 0o600))
	vh := tlsHost("hub")
	sc := samlauth.Config{BaseURL: samlNode, IDPMetadataFile: md}
	sc2 := sc
	sc2.Name = "second"
	vh.Authentication = []Solution{{Session: &session.Config{}}, {SAML: &sc}, {SAML: &sc2}}
	deps := r.deps()
	deps.Store = testkit.OpenStore(t, "")
	_, err := New(Config{VirtualHosts: []VirtualHost{vh}}, deps)
	if err == nil || !strings.Contains(err.Error(), "clients.virtual_hosts[0].authentication") || !strings.Contains(err.Error(), "path_prefix") {
		t.Fatalf("New: %v, want an error naming the chain and path_prefix", err)
	}
	sc2.PathPrefix = "/.edgefort/saml-2"
	if _, err := New(Config{VirtualHosts: []VirtualHost{vh}}, deps); err != nil {
		t.Fatalf("New with distinct prefixes: %v", err)
	}
}

// testIDPMetadata is an IdP's metadata with a fresh signing certificate.
func testIDPMetadata(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeRSAPair(t, filepath.Join(dir, "idp"))
	_, cert := readRSAPair(t, filepath.Join(dir, "idp"))
	return `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/md">
<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>` +
		base64.StdEncoding.EncodeToString(cert.Raw) + `</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>
</IDPSSODescriptor></EntityDescriptor>`
}
