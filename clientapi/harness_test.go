package clientapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"github.com/edgefort/edgefort/internal/testkit"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/keystore"
)

// pki is a test CA issuing the virtual hosts' and backends' certificates.
type pki struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	n    atomic.Int64
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{key: key, cert: cert}
	p.n.Store(1)
	return p
}

// issue is a leaf for names (host names or IP addresses).
func (p *pki) issue(t testing.TB, names ...string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.n.Add(1)), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// rig is a keystore manager with a "hub" keystore (hub.example) and a
// "ca" truststore, and the backends and clients that trust the CA.
type rig struct {
	pki    *pki
	stores *keystore.Manager
	logs   *syncBuffer
	reg    *prom.Registry
	authz  *tableAuthz
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{pki: newPKI(t), logs: &syncBuffer{}, reg: prom.NewRegistry(), authz: &tableAuthz{allow: map[string]bool{}}}
	t.Cleanup(func() { r.logs.checkKeys(t) })
	var err error
	r.stores, err = keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	key, cert := r.pki.issue(t, "hub.example")
	must(t, r.stores.CreateStore("hub", keystore.KindKeystore))
	must(t, r.stores.PutEntry("hub", "tls", key, []*x509.Certificate{cert}))
	must(t, r.stores.CreateStore("ca", keystore.KindTruststore))
	must(t, r.stores.PutTrusted("ca", "ca", []*x509.Certificate{r.pki.cert}))
	return r
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func on() *bool { b := true; return &b }

// tlsHost is a virtual host on a free loopback port with the hub keystore.
func tlsHost(name string) VirtualHost {
	return VirtualHost{Name: name, Listen: Addresses{"127.0.0.1:0"}, SSL: keystore.SSL{Enabled: on(), Keystore: "hub", MinVersion: "1.2"}}
}

// backend is a TLS backend on 127.0.0.1 with a certificate from the CA and
// the target endpoint that leads to it.
func (r *rig) backend(t testing.TB, name string, h http.Handler) TargetEndpoint {
	t.Helper()
	key, cert := r.pki.issue(t, "127.0.0.1")
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return TargetEndpoint{Name: name, URL: srv.URL, SSL: keystore.SSL{Enabled: on(), Truststore: "ca", MinVersion: "1.2"}}
}

// mtlsBackend is a TLS backend that requires a client certificate from
// the CA; it returns its URL.
func (r *rig) mtlsBackend(t testing.TB, h http.Handler) string {
	t.Helper()
	key, cert := r.pki.issue(t, "127.0.0.1")
	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// client trusts the CA and expects hub.example; local, when set, is the
// address it connects from; h2 offers HTTP/2.
func (r *rig) client(local string, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	d := &net.Dialer{}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "hub.example"},
		DialContext:       d.DialContext,
		ForceAttemptHTTP2: h2,
	}}
}

// deps are the rig's, with a fresh registry (kept as r.reg) for each
// server.
func (r *rig) deps() Deps {
	r.reg = prom.NewRegistry()
	return Deps{Keystores: r.stores, Authorizer: r.authz, Registerer: r.reg,
		Logger: slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// start runs a Server for cfg until the test ends and returns it once every
// virtual host is bound. Each virtual host's chain gets the test token
// solution first.
func (r *rig) start(t testing.TB, cfg Config) *Server {
	t.Helper()
	srv, err := New(cfg, r.deps())
	if err != nil {
		t.Fatal(err)
	}
	addTokens(srv.hosts)
	runServer(t, srv)
	return srv
}

func addTokens(hosts []*virtualHost) {
	for _, h := range hosts {
		h.chain.solutions = append([]auth.Solution{testTokens}, h.chain.solutions...)
		h.chain.bearer = true
	}
}

func runServer(t testing.TB, srv *Server) context.CancelFunc {
	t.Helper()
	ready := make(chan struct{})
	srv.deps.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return cancel
}

// tokenSolution stands for the JWT solution in these tests: "Bearer
// <user>-token" authenticates user, "Bearer <user>-cached" too as if from
// the solution's cache of verified tokens, any other bearer value is
// refused.
type tokenSolution struct{}

var testTokens auth.Solution = tokenSolution{}

func (tokenSolution) Kind() string { return "jwt" }
func (tokenSolution) Name() string { return "tokens" }

func (tokenSolution) Authenticate(r *http.Request) auth.Result {
	h := r.Header.Get("Authorization")
	if h == "" {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	v := strings.TrimPrefix(h, "Bearer ")
	user, ok := strings.CutSuffix(v, "-token")
	cached := false
	if !ok {
		user, ok = strings.CutSuffix(v, "-cached")
		cached = ok
	}
	if !ok || user == "" {
		return auth.Result{Outcome: auth.Refused, Reason: "bad_token"}
	}
	return auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: user, Directory: "corp", Groups: []string{"g1", "g2"}}, Cached: cached}
}

// tableAuthz allows "user action type/space/id" keys and records every
// question.
type tableAuthz struct {
	mu    sync.Mutex
	allow map[string]bool
	asked []AuthzRequest
}

func (a *tableAuthz) permit(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allow[key] = true
}

func (a *tableAuthz) Authorize(_ context.Context, r AuthzRequest) (Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, r)
	key := r.UserID + " " + r.Action + " " + resourceString(r.Resource)
	if a.allow[key] {
		return Decision{Allow: true, Source: "cloud"}, nil
	}
	return Decision{Allow: false, Reason: "secret internal policy detail", Source: "cloud"}, nil
}

// syncBuffer is a log sink safe for the server's goroutines, with readers
// of its JSON records.
type syncBuffer struct{ testkit.SyncBuffer }

// lines are the JSON log records with msg.
func (s *syncBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range bytes.Split([]byte(s.String()), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// checkKeys fails t for a log record that carries a key twice: a JSON
// reader keeps one of the two, so the other is lost to whoever reads the
// logs (a logger that already holds virtual_host must not be given it
// again).
func (s *syncBuffer) checkKeys(t testing.TB) {
	t.Helper()
	for _, l := range bytes.Split([]byte(s.String()), []byte("\n")) {
		dec := json.NewDecoder(bytes.NewReader(l))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			continue
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				break
			}
			key, _ := k.(string)
			if seen[key] {
				t.Errorf("log record has %q twice: %s", key, l)
			}
			seen[key] = true
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				break
			}
		}
	}
}

// echo is a backend that answers with what it received.
type seen struct {
	Method, Path, Host string
	Header             http.Header
}

func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "X-Backend-Hop")
		w.Header().Set("X-Backend-Hop", "1")
		json.NewEncoder(w).Encode(seen{Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header})
	})
}
