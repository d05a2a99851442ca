package authapi

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
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
)

// ca is a test CA issuing the listener's and the modules' certificates.
type ca struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	n    atomic.Int64
}

func newCA(t testing.TB, name string) *ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	c := &ca{key: key, cert: cert}
	c.n.Store(1)
	return c
}

// issue is a leaf with common name cn, for server and client use.
func (c *ca) issue(t testing.TB, cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(c.n.Add(1)), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

func (c *ca) tlsCert(t testing.TB, cn string) tls.Certificate {
	key, cert := c.issue(t, cn)
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// clock is the injected clock; tests move it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rig is a running API on a loopback port: keystore "api" (CN
// api.example) and truststore "modules" (the CA), plus a client with a
// certificate from that CA.
type rig struct {
	ca     *ca
	api    *API
	clock  *clock
	logs   *testkit.SyncBuffer
	client *http.Client // presents CN "auth-module"
	url    string
	cfg    Config
	deps   Deps
	stop   func() // stops the running API and waits for it
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newRig(t testing.TB, edit func(*Config)) *rig { return newRigWith(t, edit, nil) }

// newRigWith is newRig with the sessions kept in db (nil: memory).
func newRigWith(t testing.TB, edit func(*Config), db *store.DB) *rig {
	t.Helper()
	r := &rig{ca: newCA(t, "module CA"), clock: &clock{t: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)}, logs: &testkit.SyncBuffer{}}
	stores, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	key, cert := r.ca.issue(t, "api.example")
	must(t, stores.CreateStore("api", keystore.KindKeystore))
	must(t, stores.PutEntry("api", "tls", key, []*x509.Certificate{cert}))
	must(t, stores.CreateStore("modules", keystore.KindTruststore))
	must(t, stores.PutTrusted("modules", "ca", []*x509.Certificate{r.ca.cert}))
	r.cfg = Config{Listen: "127.0.0.1:0", SSL: keystore.SSL{ClientAuthEnabled: true, Keystore: "api", Truststore: "modules"}}
	if edit != nil {
		edit(&r.cfg)
	}
	r.deps = Deps{Keystores: stores, Now: r.clock.now, State: db,
		Logger: slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	r.start(t)
	r.client = r.clientWith(r.ca.tlsCert(t, "auth-module"))
	return r
}

// start runs a new API with the rig's settings until stop or the test's
// end.
func (r *rig) start(t testing.TB) {
	t.Helper()
	ready := make(chan struct{})
	deps := r.deps
	deps.Ready = func() { close(ready) }
	var err error
	r.api, err = New(r.cfg, deps)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.api.Run(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	r.url = "https://" + r.api.Addr()
}

// clientWith is a client trusting the CA that presents certs.
func (r *rig) clientWith(certs ...tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(r.ca.cert)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "api.example", Certificates: certs},
		DialContext: (&net.Dialer{}).DialContext}}
}

// call sends body (JSON-encoded unless a string) and decodes the answer
// into out when it is not nil; it returns the status.
func (r *rig) call(t testing.TB, c *http.Client, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		must(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// ticketFor asks the API for a ticket for alice.
func (r *rig) ticketFor(t testing.TB, target, vhost string) TicketResponse {
	t.Helper()
	var resp TicketResponse
	req := TicketRequest{UserRequest: UserRequest{UserID: "alice", UserDirectory: "corp", Groups: []string{"sales"}, VirtualHost: vhost}, TargetURL: target}
	if code := r.call(t, r.client, "POST", "/v1/tickets", req, &resp); code != http.StatusCreated {
		t.Fatalf("POST /v1/tickets: status %d, want 201", code)
	}
	return resp
}

// browse is a browser request to the node carrying query; nil when
// target is no URL http.NewRequest takes.
func browse(target string) *http.Request {
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Accept", "text/html")
	return req
}
