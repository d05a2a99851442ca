package oidcauth

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/keystore"
)

// provider is npm oidc-provider on a loopback TLS socket.
type testProvider struct {
	issuer string
	cert   *x509.Certificate
}

// startProvider runs oidc-provider with clients (its client metadata);
// the ID tokens of the clients in tamper get a bad inner signature.
func startProvider(t *testing.T, clients []map[string]any, tamper []string) *testProvider {
	t.Helper()
	node, dir := peertest.OIDCProvider(t)
	tmp := t.TempDir()
	cert, certFile, keyFile := loopbackCert(t, tmp)
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := ln.File()
	ln.Close() // the duplicate in lnFile keeps the socket bound for node
	if err != nil {
		t.Fatal(err)
	}
	issuer := "https://" + ln.Addr().String()
	cfg, err := json.Marshal(map[string]any{"issuer": issuer, "cert": certFile, "key": keyFile, "clients": clients, "tamper": tamper})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(dir, "provider.mjs"))
	cmd.Dir = dir
	cmd.ExtraFiles = []*os.File{lnFile}
	cmd.Stdin = strings.NewReader(string(cfg))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lnFile.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("oidc-provider stderr:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("oidc-provider did not start (%q, %v):\n%s", line, err, stderr.String())
	}
	go io.Copy(io.Discard, out)
	return &testProvider{issuer: issuer, cert: cert}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// loopbackCert makes a self-signed certificate for 127.0.0.1.
func loopbackCert(t *testing.T, dir string) (*x509.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "oidc-provider test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "idp.crt"), filepath.Join(dir, "idp.key")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, certFile, keyFile
}

// stores trusts the provider's certificate in truststore "idp".
func (p *testProvider) stores(t *testing.T) *keystore.Manager {
	t.Helper()
	m, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreateStore("idp", keystore.KindTruststore); err != nil {
		t.Fatal(err)
	}
	if err := m.PutTrusted("idp", "server", []*x509.Certificate{p.cert}); err != nil {
		t.Fatal(err)
	}
	return m
}

// encJWK is the public key of pair which ("active" or "pending") as a
// client's encryption key for the provider.
func encJWK(t *testing.T, k *keystore.KeyPairs, which string) map[string]any {
	t.Helper()
	b, err := k.JWKS(which)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	jwk := set.Keys[0]
	delete(jwk, "alg") // the client's id_token_encrypted_response_alg decides
	return jwk
}

func keyPairs(t *testing.T) *keystore.KeyPairs {
	t.Helper()
	k, err := keystore.OpenKeyPairs(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Generate(2048); err != nil {
		t.Fatal(err)
	}
	return k
}

// client is oidc-provider client metadata for id, with the node's
// callback under nodeURL.
func client(id, nodeURL string, jwk map[string]any, alg, enc string) map[string]any {
	c := map[string]any{
		"client_id": id, "client_secret": "secret-" + id,
		"redirect_uris": []string{nodeURL + "/" + id + "/callback"},
		"grant_types":   []string{"authorization_code"}, "response_types": []string{"code"},
	}
	if jwk != nil {
		c["jwks"] = map[string]any{"keys": []any{jwk}}
	}
	if alg != "" {
		c["id_token_encrypted_response_alg"] = alg
		c["id_token_encrypted_response_enc"] = enc
	}
	return c
}

// node is the relying party under test: solutions mounted under /<client
// id>/ on one loopback HTTP server, each answering its callback with the
// result as JSON.
type node struct {
	srv  *httptest.Server
	mu   sync.Mutex
	mux  *http.ServeMux
	sols map[string]*Solution
}

type callbackAnswer struct {
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason"`
	User     string `json:"user"`
	Redirect string `json:"redirect"`
}

func newNode(t *testing.T) *node {
	n := &node{mux: http.NewServeMux(), sols: map[string]*Solution{}}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		mux := n.mux
		n.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

// add builds the solution for client id with cfg's provider settings.
func (n *node) add(t *testing.T, id string, cfg Config, deps Deps) *Solution {
	t.Helper()
	cfg.ClientID, cfg.ClientSecret = id, "secret-"+id
	cfg.CallbackPath, cfg.LoginPath = "/"+id+"/callback", "/"+id+"/login"
	cfg.VerifyPath, cfg.JWKSPath = "/"+id+"/verify", "/"+id+"/jwks.json"
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for p, h := range s.Handlers() {
		n.mux.Handle(p, h)
	}
	n.mux.HandleFunc("GET "+s.CallbackPath(), func(w http.ResponseWriter, r *http.Request) {
		res := s.Authenticate(r)
		if res.Err != nil {
			t.Logf("%s callback: %s: %v", id, res.Reason, res.Err)
		}
		json.NewEncoder(w).Encode(callbackAnswer{Outcome: res.Outcome.String(), Reason: res.Reason,
			User: res.Identity.UserID, Redirect: res.Redirect})
	})
	n.sols[id] = s
	return s
}

// browser follows the user's steps: redirects, the provider's login and
// consent forms; it keeps cookies.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T, p *testProvider) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, c: &http.Client{Jar: jar, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// login starts at start (a node URL) and signs in as user at the
// provider; it returns the callback URL the provider sends the browser
// back to, not yet requested.
func (b *browser) login(start, user string) string {
	b.t.Helper()
	next, method, form := start, http.MethodGet, url.Values(nil)
	for range 20 {
		var resp *http.Response
		var err error
		if method == http.MethodPost {
			resp, err = b.c.PostForm(next, form)
		} else {
			resp, err = b.c.Get(next)
		}
		if err != nil {
			b.t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		base := resp.Request.URL
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := base.Parse(resp.Header.Get("Location"))
			if err != nil {
				b.t.Fatal(err)
			}
			if strings.Contains(loc.Path, "/callback") {
				return loc.String()
			}
			next, method = loc.String(), http.MethodGet
		case resp.StatusCode == http.StatusOK && formAction.Match(body):
			action, _ := base.Parse(string(formAction.FindSubmatch(body)[1]))
			next, method = action.String(), http.MethodPost
			if strings.Contains(string(body), `value="login"`) {
				form = url.Values{"prompt": {"login"}, "login": {user}, "password": {"any"}}
			} else {
				form = url.Values{"prompt": {"consent"}}
			}
		default:
			b.t.Fatalf("login: %s %s answered %s: %.300s", method, next, resp.Status, body)
		}
	}
	b.t.Fatal("login: too many steps")
	return ""
}

// callback requests the callback URL and decodes the node's answer.
func (b *browser) callback(u string) callbackAnswer {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a callbackAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		b.t.Fatalf("callback %s: %s: %v", u, resp.Status, err)
	}
	return a
}

func baseConfig(p *testProvider) Config {
	return Config{Issuer: p.issuer, SSL: keystore.SSL{Truststore: "idp"}}
}

func (n *node) url(id, path string) string { return fmt.Sprintf("%s/%s/%s", n.srv.URL, id, path) }

var _ = auth.Authenticated
