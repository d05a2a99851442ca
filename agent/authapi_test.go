package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// testCert is a certificate for cn signed by parent (self-signed CA when
// parent is nil).
func testCert(t *testing.T, cn string, parent *tls.Certificate) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	signer, signerKey := tmpl, any(key)
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent.Leaf, parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestTicketLoginThroughTheAgent: the agent runs clients.auth_api as its
// own component; a module with a certificate from the configured
// truststore gets a ticket over mTLS, and the browser's request with it
// reaches the backend as alice, authorized by the real control plane.
// A module without a certificate is refused at the handshake.
func TestTicketLoginThroughTheAgent(t *testing.T) {
	r := newCloudRig(t)
	dir, _ := r.enroll(t)
	ca := testCert(t, "module CA", nil)
	server, module := testCert(t, "api.example", &ca), testCert(t, "auth-module", &ca)
	stores, err := keystore.Open(keystore.Options{Dir: filepath.Join(dir, keystoresDir), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		stores.CreateStore("api", keystore.KindKeystore),
		stores.PutEntry("api", "tls", server.PrivateKey.(*ecdsa.PrivateKey), []*x509.Certificate{server.Leaf}),
		stores.CreateStore("modules", keystore.KindTruststore),
		stores.PutTrusted("modules", "ca", []*x509.Certificate{ca.Leaf}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	backend := testBackend(t)
	cfg := configIn(t, dir, cloudSection()+`clients:
  auth_api:
    listen: 127.0.0.1:0
    ssl: {client_auth_enabled: true, keystore: api, truststore: modules}
    allowed_common_names: [auth-module]
  target_endpoints:
    - {name: engine, url: '`+backend+`'}
  virtual_hosts:
    - name: hub
      listen: 127.0.0.1:0
      authentication:
        - session: {}
        - ticket: {module_url: "https://login.example/"}
      routes:
        - {name: apps, match: "GET /apps/{app}/", target: engine, action: app.read, resource: {type: app, id: "{app}", space: sales}}
`)
	a, _ := runAgent(t, cfg, slog.New(slog.DiscardHandler))
	testkit.WaitFor(t, "every component ready", a.Ready)
	apiURL := a.Status().AuthAPI // what edgefort status --json and the dev stack read
	if apiURL != "https://"+a.authAPI.Load().Addr() {
		t.Fatalf("status auth_api %q, want the bound address %s", apiURL, a.authAPI.Load().Addr())
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "api.example", Certificates: certs}}}
	}
	body, _ := json.Marshal(authapi.TicketRequest{UserRequest: authapi.UserRequest{UserID: "alice", UserDirectory: "corp"}})
	if resp, err := client().Post(apiURL+"/v1/tickets", "application/json", bytes.NewReader(body)); err == nil {
		resp.Body.Close()
		t.Fatalf("one-way TLS: status %d, want the handshake refused", resp.StatusCode)
	}
	resp, err := client(module).Post(apiURL+"/v1/tickets", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tk authapi.TicketResponse
	err = json.NewDecoder(resp.Body).Decode(&tk)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/tickets: %d %v", resp.StatusCode, err)
	}

	// The ticket signs alice in: a 303 to the same URL without the
	// ticket, with the session cookie, which then serves her.
	base := a.Status().VirtualHosts["hub"]
	get := func(url string, cookies ...*http.Cookie) (*http.Response, string) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	login, _ := get(base + "/apps/forecast/?qlikTicket=" + tk.Ticket)
	if login.StatusCode != http.StatusSeeOther || login.Header.Get("Location") != "/apps/forecast/" || len(login.Cookies()) == 0 {
		t.Fatalf("with the ticket: %d, Location %q, %d cookies; want 303 to /apps/forecast/ with the session cookie", login.StatusCode, login.Header.Get("Location"), len(login.Cookies()))
	}
	if next, body := get(base+"/apps/forecast/", login.Cookies()...); next.StatusCode != http.StatusOK || body != "alice /apps/forecast/" {
		t.Errorf("with the session cookie: %d %q, want alice's page", next.StatusCode, body)
	}
	if again, _ := get(base + "/apps/forecast/?qlikTicket=" + tk.Ticket); again.StatusCode != http.StatusUnauthorized {
		t.Errorf("the same ticket again: %d, want 401", again.StatusCode)
	}
}

// testBackend answers with the user it was sent and the path.
func testBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprintf(w, "%s %s", req.Header.Get("X-Edgefort-User"), req.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
