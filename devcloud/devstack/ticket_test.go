package devstack

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/session"
)

// reply is one answer, redirects not followed.
type reply struct {
	status   int
	location string
	cookies  []*http.Cookie
	body     string
}

// send makes a request trusting the dev CA, without following redirects.
func (d *devStack) send(t *testing.T, method, target string, body string, header http.Header, cookies ...*http.Cookie) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	c := &http.Client{
		Timeout:       30 * time.Second,
		Transport:     d.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{resp.StatusCode, resp.Header.Get("Location"), resp.Cookies(), string(b)}
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestDevStackTicketLogin goes through the banner's tour of the ticket
// login: a browser without credentials is sent to the dev module's login
// page, which gets a ticket over mutual TLS and sends it back with it; the
// ticket opens a node session (its cookie Secure and HttpOnly) that the
// engine sees as the user, and is refused the second time. The module
// sends tickets to the node's virtual hosts only.
func TestDevStackTicketLogin(t *testing.T) {
	d := startStack(t)
	module := d.Info.AuthModule.URL
	if !strings.HasPrefix(module, "https://127.0.0.1:") || !strings.HasPrefix(d.authAPI, "https://127.0.0.1:") {
		t.Fatalf("auth module at %q, auth API at %q: want both https://127.0.0.1:PORT", module, d.authAPI)
	}
	var banner strings.Builder
	if err := d.PrintBanner(&banner, d.agent); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"  auth API      " + d.authAPI + " ",
		"  auth module   " + module + " ",
		"-L '" + module + "/login?user=bob&return_to=" + d.hub + "/api/v1/apps/q3-report'",
		" sessions revoke --user dev/bob\n",
	} {
		if !strings.Contains(banner.String(), line) {
			t.Errorf("the banner lacks %q:\n%s", line, banner.String())
		}
	}
	page := d.hub + "/api/v1/apps/q3-report"
	browser := http.Header{"Accept": {"text/html,application/xhtml+xml"}}

	r := d.send(t, "GET", page, "", browser)
	want := module + "/login?return_to=" + url.QueryEscape(page)
	if r.status != http.StatusSeeOther || r.location != want {
		t.Fatalf("a browser without credentials: %d to %q, want 303 to %q", r.status, r.location, want)
	}
	if r := d.send(t, "GET", r.location, "", browser); r.status != 200 || !strings.Contains(r.body, `<form method="get" action="/login">`) {
		t.Fatalf("the login page: %d %q, want the form", r.status, r.body)
	}

	r = d.send(t, "GET", want+"&user=bob", "", browser)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, page+"?qlikTicket=") {
		t.Fatalf("login as bob: %d to %q %q, want 303 to the page with a ticket", r.status, r.location, r.body)
	}
	withTicket := r.location
	r = d.send(t, "GET", withTicket, "", browser)
	sessionCookie := session.DefaultCookiePrefix + "hub"
	c := cookieNamed(r.cookies, sessionCookie)
	if r.status != http.StatusSeeOther || r.location != page || c == nil || !c.Secure || !c.HttpOnly {
		t.Fatalf("the ticket: %d to %q, cookie %+v; want 303 to %s with a Secure HttpOnly %s", r.status, r.location, c, page, sessionCookie)
	}
	r = d.send(t, "GET", page, "", nil, c)
	if r.status != 200 {
		t.Fatalf("with the session cookie: %d %s", r.status, r.body)
	}
	iss := "edgefort:" + d.Config.Device.ID
	bob := seen{User: "bob", Directory: "dev", Groups: "analysts", Verified: true, Sub: "bob", Aud: identityAudience, Iss: iss}
	if diff := cmp.Diff(bob, seenIn(t, []byte(r.body))); diff != "" {
		t.Errorf("the engine saw (-want +got):\n%s", diff)
	}
	if r := d.send(t, "GET", withTicket, "", nil); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "ticket_already_used") {
		t.Errorf("the same ticket again: %d %s, want 401 ticket_already_used", r.status, r.body)
	}
	// An open redirect through the module, which would hand the ticket
	// to another site: refused.
	for _, back := range []string{"https://evil.example/", "https://user@" + strings.TrimPrefix(d.hub, "https://") + "/", "/api/v1/apps/q3-report"} {
		r := d.send(t, "GET", module+"/login?user=alice&return_to="+url.QueryEscape(back), "", nil)
		if r.status != http.StatusBadRequest || r.location != "" {
			t.Errorf("return_to %s: %d to %q, want 400", back, r.status, r.location)
		}
	}
}

// TestDevStackAuthAPIClients: the node's auth API takes the module's
// certificate only: without a client certificate the handshake fails; a
// dev-CA certificate with another CN gets 403.
func TestDevStackAuthAPIClients(t *testing.T) {
	d := startStack(t)
	ca, err := LoadCA(filepath.Join(d.stateDir, CADir))
	if err != nil {
		t.Fatal(err)
	}
	key, leaf, err := ca.Issue("not-the-module", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	moduleCert, err := tls.LoadX509KeyPair(d.Info.AuthModule.Cert, d.Info.AuthModule.Key)
	if err != nil {
		t.Fatal(err)
	}
	post := func(certs ...tls.Certificate) (int, error) {
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: d.roots, Certificates: certs}}}
		resp, err := c.Post(d.authAPI+"/v1/tickets", "application/json", bytes.NewReader([]byte(`{"user_id":"alice","user_directory":"dev"}`)))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := post(); err == nil {
		t.Errorf("without a client certificate: %d, want the handshake refused", code)
	}
	other := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	if code, err := post(other); err != nil || code != http.StatusForbidden {
		t.Errorf("a dev-CA certificate with another CN: %d %v, want 403", code, err)
	}
	if code, err := post(moduleCert); err != nil || code != http.StatusCreated {
		t.Errorf("the module's certificate: %d %v, want 201", code, err)
	}
}

// TestDevStackPortalSession: the dev portal registers a session token
// through the auth API and sets it in its cookie, which the hub's
// session_module solution accepts (cookies are per host, not per port);
// signing out of the portal deletes it at the node, refused at the next
// request.
func TestDevStackPortalSession(t *testing.T) {
	d := startStack(t)
	module := d.Info.AuthModule.URL
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	r := d.send(t, "POST", module+"/portal/login", "user=alice", form)
	c := cookieNamed(r.cookies, PortalCookie)
	if r.status != 200 || c == nil || !c.Secure || !c.HttpOnly {
		t.Fatalf("portal login: %d %q cookie %+v; want 200 with a Secure HttpOnly %s", r.status, r.body, c, PortalCookie)
	}
	page := d.hub + "/api/v1/apps/q3-report"
	r = d.send(t, "GET", page, "", nil, c)
	if r.status != 200 {
		t.Fatalf("with the portal cookie: %d %s", r.status, r.body)
	}
	if got := seenIn(t, []byte(r.body)); got.User != "alice" || got.Groups != "staff" {
		t.Errorf("the engine saw %+v, want alice of staff", got)
	}
	if r := d.send(t, "POST", module+"/portal/logout", "", nil, c); r.status != 200 {
		t.Fatalf("portal logout: %d %s", r.status, r.body)
	}
	if r := d.send(t, "GET", page, "", nil, c); r.status != http.StatusUnauthorized {
		t.Errorf("the portal cookie after logout: %d, want 401", r.status)
	}
	if r := d.send(t, "POST", module+"/portal/login", "user=al%20ice", form); r.status != http.StatusBadRequest {
		t.Errorf("a user name with a space: %d, want 400", r.status)
	}
}
