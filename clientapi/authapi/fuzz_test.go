package authapi

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// FuzzAuthAPI sends arbitrary methods, paths and bodies to the API's
// handler in-process, as a client with a trusted certificate, and
// presents whatever ticket it issues (or the path, as a query) to the
// ticket solution. Nothing panics, every answer is one the API documents,
// and no redirect leaves the node's hosts.
func FuzzAuthAPI(f *testing.F) {
	r := newRig(f, nil)
	sol := ticketSolution(f, r, nil)
	peer := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{r.ca.tlsCert(f, "auth-module").Leaf}}
	seeds := []struct {
		method uint8
		path   string
		body   string
	}{
		{0, "/v1/tickets", `{"user_id":"alice","user_directory":"corp","target_url":"/apps?x=1"}`},
		{0, "/v1/tickets", `{"user_id":"alice","user_directory":"corp","target_url":"//evil.com","groups":["a"],"attributes":{"k":["v"]}}`},
		{0, "/v1/sessions", `{"user_id":"bob","user_directory":"corp","session_id":"0123456789012345678901234"}`},
		{1, "/v1/sessions/0123456789012345678901234", ``},
		{2, "/v1/sessions/0123456789012345678901234", ``},
		{0, "/v1/tickets", `{"user_id":"a","user_directory":"d"}{"x":1}`},
		{1, "/v1/../v1/sessions/%2e%2e", ``},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body))
	}
	methods := []string{"POST", "GET", "DELETE", "PUT", "HEAD"}
	documented := map[int]bool{200: true, 201: true, 204: true, 301: true, 307: true, 308: true, 400: true, 404: true, 405: true, 409: true, 413: true, 415: true, 503: true}
	f.Fuzz(func(t *testing.T, m uint8, path string, body []byte) {
		u, err := url.ParseRequestURI(path)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		req := httptest.NewRequest(methods[int(m)%len(methods)], "https://api.example/", bytes.NewReader(body))
		req.URL, req.RequestURI = u, path
		req.Header.Set("Content-Type", "application/json")
		req.TLS = peer
		w := httptest.NewRecorder()
		r.api.Handler().ServeHTTP(w, req)
		if !documented[w.Code] {
			t.Fatalf("%s %q: status %d", req.Method, path, w.Code)
		}
		var tk TicketResponse
		if w.Code == http.StatusCreated && json.Unmarshal(w.Body.Bytes(), &tk) == nil && tk.Ticket != "" {
			checkRedirect(t, sol.Authenticate(browse("https://hub.example"+u.EscapedPath()+"?qlikTicket="+tk.Ticket)))
			if res := sol.Authenticate(browse("https://hub.example/?qlikTicket=" + tk.Ticket)); res.Outcome != auth.Refused {
				t.Fatalf("ticket redeemed twice: %v", res.Outcome)
			}
		}
		// A raw query with a bad escape makes no request at all (a
		// browser could not send it either): nothing to authenticate.
		if req := browse("https://hub.example/?qlikTicket=x&" + u.RawQuery); req != nil {
			checkRedirect(t, sol.Authenticate(req))
		}
	})
}

// checkRedirect fails t if res redirects off the node's hosts.
func checkRedirect(t *testing.T, res auth.Result) {
	t.Helper()
	if res.Redirect == "" {
		return
	}
	loc := res.Redirect
	if strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !strings.ContainsAny(loc, "\\\t\r\n") {
		return
	}
	for _, ok := range []string{"https://hub.example/", "https://hub.example:", "http://hub.example/", "https://10.0.0.5:", "https://portal.example/"} {
		if strings.HasPrefix(loc, ok) {
			return
		}
	}
	t.Fatalf("redirect to %q", loc)
}
