package peertest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The OpenID provider peer: npm oidc-provider (a certified implementation)
// driven by testdata/oidcprovider/provider.mjs, installed like the jose
// peer (pinned lock file, npm ci under a flock).

var oidcProviderInstall struct {
	once sync.Once
	err  error
}

// oidcProviderProject returns the paths of node and of the oidc-provider
// project's directory (with provider.mjs), once npm ci has installed it.
func oidcProviderProject(t testing.TB) (node, dir string) {
	t.Helper()
	node, npm := Require(t, "node"), Require(t, "npm")
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("peertest: cannot locate the oidc-provider project")
	}
	dir = filepath.Join(filepath.Dir(file), "testdata", "oidcprovider")
	oidcProviderInstall.once.Do(func() { oidcProviderInstall.err = installNPM(npm, dir, "oidc-provider") })
	if oidcProviderInstall.err != nil {
		t.Fatal(oidcProviderInstall.err)
	}
	return node, dir
}

// OIDCProviderPeer is oidc-provider's socket, bound, and once Start ran,
// the provider serving it.
type OIDCProviderPeer struct {
	// Issuer is https://127.0.0.1:port.
	Issuer string
	// Cert is its self-signed certificate, to trust.
	Cert     *x509.Certificate
	certFile string
	keyFile  string
	ln       *os.File

	// Replay lists clients whose ID token, from their second token
	// request on, is the one issued at their first (an earlier login's
	// nonce); set before Start.
	Replay []string
}

// OIDCProvider runs oidc-provider with clients; see Start.
func OIDCProvider(t testing.TB, clients []map[string]any, tamper []string) *OIDCProviderPeer {
	t.Helper()
	p := NewOIDCProvider(t)
	p.Start(t, clients, tamper)
	return p
}

// NewOIDCProvider binds the provider's loopback socket and makes its
// certificate, so that the issuer is known before the relying party's
// configuration (and the relying party's address before the provider's
// clients).
func NewOIDCProvider(t testing.TB) *OIDCProviderPeer {
	t.Helper()
	cert, certFile, keyFile := loopbackCert(t, t.TempDir())
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := ln.File()
	ln.Close() // the duplicate in lnFile keeps the socket bound for node
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnFile.Close() })
	return &OIDCProviderPeer{Issuer: "https://" + ln.Addr().String(), Cert: cert, certFile: certFile, keyFile: keyFile, ln: lnFile}
}

// Start runs oidc-provider on the socket, with clients (oidc-provider
// client metadata, e.g. id_token_encrypted_response_alg/enc and jwks). The
// ID tokens of the clients listed in tamper get one byte of their inner
// signature changed and are then encrypted to the client's first jwks key
// (RSA-OAEP-256, A256GCM). Its devInteractions accept any login and
// password. It stops with the test.
func (p *OIDCProviderPeer) Start(t testing.TB, clients []map[string]any, tamper []string) {
	t.Helper()
	node, dir := oidcProviderProject(t)
	cfg, err := json.Marshal(map[string]any{"issuer": p.Issuer, "cert": p.certFile, "key": p.keyFile, "clients": clients, "tamper": tamper, "replay": p.Replay})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(dir, "provider.mjs"))
	cmd.Dir = dir
	cmd.ExtraFiles = []*os.File{p.ln}
	cmd.Stdin = strings.NewReader(string(cfg))
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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

// loopbackCert makes a self-signed certificate for 127.0.0.1 and writes
// it and its key as PEM files under dir.
func loopbackCert(t testing.TB, dir string) (*x509.Certificate, string, string) {
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

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// OIDCLogin follows a browser's steps from start (a page, with Accept:
// text/html) through the redirects and oidc-provider's login and consent
// forms, as user. It returns the URL the provider sends the browser back
// to (the first redirect to a path callbackPath), not yet requested. c
// must keep cookies and must not follow redirects itself.
func OIDCLogin(t testing.TB, c *http.Client, start, callbackPath, user string) string {
	t.Helper()
	next, method, form := start, http.MethodGet, url.Values(nil)
	for range 20 {
		var req *http.Request
		var err error
		if method == http.MethodPost {
			req, err = http.NewRequest(method, next, strings.NewReader(form.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			req, err = http.NewRequest(method, next, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		base := resp.Request.URL
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := base.Parse(resp.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			if loc.Path == callbackPath {
				return loc.String()
			}
			next, method = loc.String(), http.MethodGet
		case resp.StatusCode == http.StatusOK && formAction.Match(body):
			action, err := base.Parse(string(formAction.FindSubmatch(body)[1]))
			if err != nil {
				t.Fatal(err)
			}
			next, method = action.String(), http.MethodPost
			if strings.Contains(string(body), `value="login"`) {
				form = url.Values{"prompt": {"login"}, "login": {user}, "password": {"any"}}
			} else {
				form = url.Values{"prompt": {"consent"}}
			}
		default:
			t.Fatalf("oidc login: %s %s answered %s: %.300s", method, next, resp.Status, body)
		}
	}
	t.Fatal("oidc login: too many steps")
	return ""
}
