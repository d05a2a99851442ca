package keystore

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/edgefort/edgefort/internal/testkit"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newTLSTestManager opens an in-memory manager whose logs go to the
// returned buffer; now is its clock (nil for time.Now).
func newTLSTestManager(t testing.TB, now func() time.Time) (*Manager, *testkit.SyncBuffer) {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	m, err := Open(Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return m, logs
}

// addKeystore creates keystore name holding c under alias.
func addKeystore(t testing.TB, m *Manager, name, alias string, c *testCert) {
	t.Helper()
	if err := m.CreateStore(name, KindKeystore); err != nil {
		t.Fatal(err)
	}
	if err := m.PutEntry(name, alias, c.Key, []*x509.Certificate{c.Cert}); err != nil {
		t.Fatal(err)
	}
}

// addTruststore creates truststore name trusting cas, one alias each.
func addTruststore(t testing.TB, m *Manager, name string, cas ...*testCert) {
	t.Helper()
	if err := m.CreateStore(name, KindTruststore); err != nil {
		t.Fatal(err)
	}
	for i, ca := range cas {
		if err := m.PutTrusted(name, fmt.Sprintf("ca-%d", i+1), []*x509.Certificate{ca.Cert}); err != nil {
			t.Fatal(err)
		}
	}
}

func tlsCertOf(c *testCert) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
}

func poolOf(cas ...*testCert) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca.Cert)
	}
	return pool
}

// handshakeResult is what the test server saw of one handshake.
type handshakeResult struct {
	state tls.ConnectionState
	err   error
}

// tlsServer is a TLS listener on loopback. It completes each handshake,
// reports it on results (dropping reports nobody reads), counts failures,
// then runs its handler.
type tlsServer struct {
	addr    string
	results chan handshakeResult
	failed  atomic.Int64
}

// echo copies what the client sends back to it.
func echo(c *tls.Conn) { _, _ = io.Copy(c, c) }

// greet sends one line and closes, for peers that read until the server
// hangs up (openssl s_client -ign_eof).
func greet(c *tls.Conn) { _, _ = io.WriteString(c, "hello from edgefort\n") }

// startTLSServer serves cfg on 127.0.0.1 until the test ends, then closes
// the listener and every connection and waits for its goroutines.
func startTLSServer(t testing.TB, cfg *tls.Config, handle func(*tls.Conn)) *tlsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{addr: ln.Addr().String(), results: make(chan handshakeResult, 64)}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{} // guarded by mu
		closed bool                  // guarded by mu
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := tls.Server(c, cfg)
				defer tc.Close() // with close_notify, after a handshake
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				err := tc.Handshake()
				if err != nil {
					s.failed.Add(1)
				}
				select {
				case s.results <- handshakeResult{tc.ConnectionState(), err}:
				default:
				}
				if err != nil {
					// Read what the client still sends until it hangs up,
					// so that closing does not reset the connection before
					// the client has read the alert.
					_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
					_, _ = io.Copy(io.Discard, c)
					return
				}
				_ = tc.SetDeadline(time.Time{})
				handle(tc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// result waits for the server's report on the next handshake.
func (s *tlsServer) result(t testing.TB) handshakeResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no handshake reached the server")
		return handshakeResult{}
	}
}

// roundTrip dials addr with cfg and echoes one message, so that a refusal
// the server sends after the client's side of the handshake is done (TLS
// 1.3 client authentication) surfaces as well.
func roundTrip(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), ping(conn)
}

func ping(conn net.Conn) error {
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != "ping" {
		return fmt.Errorf("echo = %q, want ping", buf)
	}
	return nil
}

// checkErr reports whether err matches want: nil for "", else an error
// containing want.
func checkErr(t testing.TB, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error: %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: succeeded, want error containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q, want it to contain %q", what, err, want)
	}
}

func peerCN(s tls.ConnectionState) string {
	if len(s.PeerCertificates) == 0 {
		return ""
	}
	return s.PeerCertificates[0].Subject.CommonName
}

func TestServerTLS(t *testing.T) {
	ca := testCA(t, "Edge CA")
	other := testCA(t, "Other CA")
	site := ca.issue(t, "localhost")
	client := ca.issue(t, "client-1", withClientAuth())
	foreign := other.issue(t, "intruder", withClientAuth())
	serverOnly := ca.issue(t, "not-a-client") // server auth usage only

	m, logs := newTLSTestManager(t, nil)
	addKeystore(t, m, "site-2026", "site", site)
	addTruststore(t, m, "clients-2026", ca)
	must(t, m.SetRef("site", "site-2026"))
	must(t, m.SetRef("clients", "clients-2026"))

	oneWay := SSL{Keystore: "ref://site", KeyAlias: "site"}
	twoWay := SSL{Keystore: "ref://site", ClientAuthEnabled: true, Truststore: "ref://clients"}
	tests := []struct {
		name          string
		ssl           SSL
		cert          *testCert // presented by the client; nil for none
		maxVersion    uint16    // of the client; 0 for crypto/tls's
		wantErr       string    // in the client's error; "" for success
		wantServerErr string
		wantVersion   uint16
		wantClientCN  string // as the server saw it
		wantLog       string
	}{
		{name: "one-way", ssl: oneWay, wantVersion: tls.VersionTLS13},
		{name: "one-way by store name, only alias", ssl: SSL{Keystore: "site-2026"}, wantVersion: tls.VersionTLS13},
		{name: "one-way TLS 1.2 client", ssl: oneWay, maxVersion: tls.VersionTLS12, wantVersion: tls.VersionTLS12},
		{name: "two-way", ssl: twoWay, cert: client, wantVersion: tls.VersionTLS13, wantClientCN: "client-1"},
		{name: "two-way TLS 1.2", ssl: twoWay, cert: client, maxVersion: tls.VersionTLS12, wantVersion: tls.VersionTLS12, wantClientCN: "client-1"},
		{
			name: "two-way client certificate of another CA", ssl: twoWay, cert: foreign,
			wantErr:       "bad certificate",
			wantServerErr: `keystore: client certificate "CN=intruder" not trusted by truststore "clients-2026": x509: certificate signed by unknown authority`,
			wantLog:       `level=WARN msg="tls handshake refused: client certificate not trusted" subject="CN=intruder" error="not trusted by truststore \"clients-2026\": x509: certificate signed by unknown authority"`,
		},
		{
			name: "two-way client certificate of another CA, TLS 1.2", ssl: twoWay, cert: foreign, maxVersion: tls.VersionTLS12,
			wantErr:       "bad certificate",
			wantServerErr: `not trusted by truststore "clients-2026"`,
		},
		{
			name: "two-way without a client certificate", ssl: twoWay,
			wantErr:       "certificate required",
			wantServerErr: "client didn't provide a certificate",
		},
		{
			name: "two-way certificate not meant for clients", ssl: twoWay, cert: serverOnly,
			wantErr:       "bad certificate",
			wantServerErr: "incompatible key usage",
		},
		{name: "min 1.3 with a TLS 1.3 client", ssl: SSL{Keystore: "ref://site", MinVersion: "1.3"}, wantVersion: tls.VersionTLS13},
		{
			name: "min 1.3 refuses a TLS 1.2 client", ssl: SSL{Keystore: "ref://site", MinVersion: "1.3"}, maxVersion: tls.VersionTLS12,
			wantErr:       "protocol version",
			wantServerErr: "unsupported versions",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := m.ServerTLS(tt.ssl)
			if err != nil {
				t.Fatal(err)
			}
			srv := startTLSServer(t, cfg, echo)
			clientCfg := &tls.Config{RootCAs: poolOf(ca), ServerName: "localhost", MaxVersion: tt.maxVersion}
			if tt.cert != nil {
				clientCfg.Certificates = []tls.Certificate{tlsCertOf(tt.cert)}
			}
			state, err := roundTrip(srv.addr, clientCfg)
			checkErr(t, "client", err, tt.wantErr)
			got := srv.result(t)
			checkErr(t, "server", got.err, tt.wantServerErr)
			if tt.wantErr != "" {
				if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
					t.Errorf("logs lack %q:\n%s", tt.wantLog, logs)
				}
				return
			}
			if got, want := peerCN(state), "localhost"; got != want {
				t.Errorf("served certificate CN = %q, want %q", got, want)
			}
			if state.Version != tt.wantVersion {
				t.Errorf("version = %x, want %x", state.Version, tt.wantVersion)
			}
			if got := peerCN(got.state); got != tt.wantClientCN {
				t.Errorf("client certificate seen by the server = %q, want %q", got, tt.wantClientCN)
			}
		})
	}
}

func TestServerTLSBuiltin(t *testing.T) {
	m, logs := newTLSTestManager(t, nil)
	if _, err := m.ServerTLS(SSL{}); err == nil || !strings.Contains(err.Error(), "built-in certificate") {
		t.Fatalf("ServerTLS without the built-in certificate: err = %v, want one about the built-in certificate", err)
	}
	if _, err := m.EnsureBuiltin([]string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := m.ServerTLS(SSL{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "virtual host serves the built-in self-signed certificate"; !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %q:\n%s", want, logs)
	}
	st, err := m.Resolve(BuiltinStore, KindKeystore)
	if err != nil {
		t.Fatal(err)
	}
	builtin := st.Entries[BuiltinAlias].Leaf()
	srv := startTLSServer(t, cfg, echo)
	pool := x509.NewCertPool()
	pool.AddCert(builtin)
	state, err := roundTrip(srv.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if !state.PeerCertificates[0].Equal(builtin) {
		t.Errorf("served %q, want the built-in certificate", state.PeerCertificates[0].Subject)
	}
}

func TestClientTLSVerify(t *testing.T) {
	ca := testCA(t, "Edge CA")
	other := testCA(t, "Other CA")
	m, logs := newTLSTestManager(t, nil)
	addTruststore(t, m, "backends", ca)
	must(t, m.SetRef("backend-trust", "backends"))

	trusted := SSL{Truststore: "ref://backend-trust"}
	cn := func(name string, wildcard bool) SSL {
		return SSL{Truststore: "backends", CommonName: name, WildcardMatch: wildcard}
	}
	hour := time.Hour
	tests := []struct {
		name       string
		cert       *testCert // served by the backend
		ssl        SSL
		serverName string // "" for backend.internal
		wantErr    string
		wantLog    string
	}{
		{name: "host name", cert: ca.issue(t, "localhost"), ssl: trusted, serverName: "localhost"},
		{name: "host name mismatch", cert: ca.issue(t, "localhost"), ssl: trusted, serverName: "db.internal",
			wantErr: `keystore: verify server "db.internal": x509: certificate is valid for localhost, not db.internal`},
		{name: "IP address", cert: ca.issue(t, "ip", withIPs("127.0.0.1")), ssl: trusted, serverName: "127.0.0.1"},
		{name: "untrusted", cert: other.issue(t, "localhost"), ssl: trusted, serverName: "localhost",
			wantErr: `keystore: verify server "localhost": certificate "CN=localhost" not trusted by truststore "backends": x509: certificate signed by unknown authority`},
		{name: "untrusted by the system roots", cert: ca.issue(t, "localhost"), ssl: SSL{}, serverName: "localhost",
			wantErr: "not trusted by the system roots"},
		{name: "expired", cert: ca.issue(t, "localhost", withValidity(time.Now().Add(-48*hour), time.Now().Add(-24*hour))), ssl: trusted, serverName: "localhost",
			wantErr: "certificate has expired"},
		{name: "common name exact", cert: ca.issue(t, "api.host.com", withDNS()), ssl: cn("api.host.com", false)},
		{name: "common name in another case", cert: ca.issue(t, "api.host.com", withDNS()), ssl: cn("API.Host.COM", false)},
		{name: "common name as DNS name", cert: ca.issue(t, "API server", withDNS("svc.host.com")), ssl: cn("svc.host.com", false)},
		{name: "common name instead of host name", cert: ca.issue(t, "api.host.com"), ssl: cn("api.host.com", false), serverName: "10.0.0.9"},
		{name: "common name mismatch", cert: ca.issue(t, "api.host.com"), ssl: cn("web.host.com", false),
			wantErr: `certificate with CN "api.host.com" and DNS names ["api.host.com"] does not match common_name "web.host.com" exactly`},
		{name: "wildcard one label", cert: ca.issue(t, "a.host.com"), ssl: cn("*.host.com", true)},
		{name: "wildcard one label in a DNS name", cert: ca.issue(t, "A server", withDNS("x.example", "b.HOST.com")), ssl: cn("*.host.com", true)},
		{name: "wildcard two labels", cert: ca.issue(t, "a.b.host.com"), ssl: cn("*.host.com", true),
			wantErr: `does not match common_name "*.host.com" with one label in place of *`},
		{name: "wildcard apex", cert: ca.issue(t, "host.com"), ssl: cn("*.host.com", true),
			wantErr: `does not match common_name "*.host.com"`},
		{name: "wildcard without wildcard_match is literal", cert: ca.issue(t, "a.host.com"), ssl: cn("*.host.com", false),
			wantErr: `does not match common_name "*.host.com" exactly`},
		{name: "literal wildcard certificate", cert: ca.issue(t, "*.host.com", withDNS()), ssl: cn("*.host.com", false)},
		{name: "wildcard still needs a trusted chain", cert: other.issue(t, "a.host.com"), ssl: cn("*.host.com", true),
			wantErr: `not trusted by truststore "backends"`},
		{
			name: "ignore_validation_errors accepts an untrusted server", cert: other.issue(t, "localhost"), serverName: "localhost",
			ssl:     SSL{Truststore: "backends", IgnoreValidationErrors: true},
			wantLog: `level=WARN msg="accepting a server certificate that failed verification, because ssl.ignore_validation_errors is true" server_name=localhost error="keystore: verify server \"localhost\": certificate \"CN=localhost\" not trusted by truststore \"backends\"`,
		},
		{
			name: "ignore_validation_errors accepts a name mismatch", cert: ca.issue(t, "a.b.host.com"),
			ssl:     SSL{Truststore: "backends", CommonName: "*.host.com", WildcardMatch: true, IgnoreValidationErrors: true},
			wantLog: `does not match common_name \"*.host.com\"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startTLSServer(t, &tls.Config{Certificates: []tls.Certificate{tlsCertOf(tt.cert)}}, echo)
			serverName := tt.serverName
			if serverName == "" {
				serverName = "backend.internal"
			}
			cfg, err := m.ClientTLS(tt.ssl, serverName, Vars{})
			if err != nil {
				t.Fatal(err)
			}
			before := strings.Count(logs.String(), "\n")
			state, err := roundTrip(srv.addr, cfg)
			checkErr(t, "client", err, tt.wantErr)
			if err == nil && !state.PeerCertificates[0].Equal(tt.cert.Cert) {
				t.Errorf("connected to %q, want %q", state.PeerCertificates[0].Subject, tt.cert.Cert.Subject)
			}
			newLogs := strings.Join(strings.Split(logs.String(), "\n")[before:], "\n")
			if tt.wantLog == "" && newLogs != "" {
				t.Errorf("unexpected logs:\n%s", newLogs)
			}
			if tt.wantLog != "" && !strings.Contains(newLogs, tt.wantLog) {
				t.Errorf("logs lack %q:\n%s", tt.wantLog, newLogs)
			}
		})
	}
}

func TestClientTLSClientAuthAndVariables(t *testing.T) {
	ca := testCA(t, "Edge CA")
	m, _ := newTLSTestManager(t, nil)
	addTruststore(t, m, "backends", ca)
	addKeystore(t, m, "node-a", "node", ca.issue(t, "node-a", withClientAuth()))
	addKeystore(t, m, "node-b", "node", ca.issue(t, "node-b", withClientAuth()))
	spare := ca.issue(t, "node-b-spare", withClientAuth())
	must(t, m.PutEntry("node-b", "spare", spare.Key, []*x509.Certificate{spare.Cert}))
	must(t, m.SetRef("me", "node-a"))

	srv := startTLSServer(t, &tls.Config{
		Certificates: []tls.Certificate{tlsCertOf(ca.issue(t, "localhost"))},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    poolOf(ca),
	}, echo)
	vars := SSL{ClientAuthEnabled: true, Keystore: "{ssl.keystore}", KeyAlias: "{ssl.key_alias}", Truststore: "{ssl.truststore}"}
	tests := []struct {
		name    string
		ssl     SSL
		vars    Vars
		wantCN  string // client certificate the server saw
		wantErr string
	}{
		{name: "keystore by name", ssl: SSL{ClientAuthEnabled: true, Keystore: "node-a", Truststore: "backends"}, wantCN: "node-a"},
		{name: "keystore by reference", ssl: SSL{ClientAuthEnabled: true, Keystore: "ref://me", Truststore: "backends"}, wantCN: "node-a"},
		{name: "key alias", ssl: SSL{ClientAuthEnabled: true, Keystore: "node-b", KeyAlias: "spare", Truststore: "backends"}, wantCN: "node-b-spare"},
		{name: "variables", ssl: vars, vars: Vars{Keystore: "node-b", KeyAlias: "node", Truststore: "backends"}, wantCN: "node-b"},
		{name: "variable naming a reference", ssl: vars, vars: Vars{Keystore: "ref://me", KeyAlias: "node", Truststore: "backends"}, wantCN: "node-a"},
		{name: "keystore variable only", ssl: SSL{ClientAuthEnabled: true, Keystore: "{ssl.keystore}", Truststore: "backends"}, vars: Vars{Keystore: "node-a"}, wantCN: "node-a"},
		{name: "client auth off presents nothing", ssl: SSL{Keystore: "node-a", Truststore: "backends"}, wantErr: "certificate required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := m.ClientTLS(tt.ssl, "localhost", tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			_, err = roundTrip(srv.addr, cfg)
			checkErr(t, "client", err, tt.wantErr)
			if got := peerCN(srv.result(t).state); got != tt.wantCN {
				t.Errorf("server saw client certificate %q, want %q", got, tt.wantCN)
			}
		})
	}
}

// TestConfigsFollowChanges checks that repointing a reference and
// replacing an alias reach the next handshake of configs built before.
func TestConfigsFollowChanges(t *testing.T) {
	ca := testCA(t, "Edge CA")
	caB := testCA(t, "Edge CA B")
	m, logs := newTLSTestManager(t, nil)
	addKeystore(t, m, "site-1", "site", ca.issue(t, "localhost", withDNS("localhost", "site-1")))
	addKeystore(t, m, "site-2", "site", ca.issue(t, "localhost", withDNS("localhost", "site-2")))
	must(t, m.SetRef("site", "site-1"))
	addTruststore(t, m, "trust-a", ca)
	addTruststore(t, m, "trust-b", caB)
	must(t, m.SetRef("trust", "trust-a"))
	addKeystore(t, m, "me-1", "me", ca.issue(t, "me-1", withClientAuth()))
	addKeystore(t, m, "me-2", "me", ca.issue(t, "me-2", withClientAuth()))
	must(t, m.SetRef("me", "me-1"))

	serverCfg, err := m.ServerTLS(SSL{Keystore: "ref://site", KeyAlias: "site", ClientAuthEnabled: true, Truststore: "ref://trust"})
	if err != nil {
		t.Fatal(err)
	}
	clientCfg, err := m.ClientTLS(SSL{Keystore: "ref://me", ClientAuthEnabled: true, Truststore: "ref://trust"}, "localhost", Vars{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, serverCfg, echo)

	// site names the served certificate by its second DNS name.
	site := func(s tls.ConnectionState) string {
		if len(s.PeerCertificates) == 0 || len(s.PeerCertificates[0].DNSNames) < 2 {
			return ""
		}
		return s.PeerCertificates[0].DNSNames[1]
	}
	type seen struct{ Served, Client, Err string }
	var got, want []seen
	step := func(w seen, change func() error) {
		t.Helper()
		if change != nil {
			must(t, change())
		}
		state, err := roundTrip(srv.addr, clientCfg)
		s := seen{Served: site(state), Client: peerCN(srv.result(t).state)}
		if err != nil {
			s = seen{Err: err.Error()}
		}
		got, want = append(got, s), append(want, w)
	}
	step(seen{Served: "site-1", Client: "me-1"}, nil)
	step(seen{Served: "site-2", Client: "me-1"}, func() error { return m.SetRef("site", "site-2") })
	step(seen{Served: "site-2", Client: "me-2"}, func() error { return m.SetRef("me", "me-2") })
	replacement := ca.issue(t, "localhost", withDNS("localhost", "site-2-replaced"))
	step(seen{Served: "site-2-replaced", Client: "me-2"}, func() error {
		return m.PutEntry("site-2", "site", replacement.Key, []*x509.Certificate{replacement.Cert})
	})
	// Trusting only CA B, the client refuses the server first.
	step(seen{Err: `keystore: verify server "localhost": certificate "CN=localhost" not trusted by truststore "trust-b"`}, func() error { return m.SetRef("trust", "trust-b") })
	step(seen{Served: "site-2-replaced", Client: "me-2"}, func() error {
		return m.PutTrusted("trust-b", "ca-a", []*x509.Certificate{ca.Cert})
	})
	for i := range got {
		if want[i].Err != "" && strings.HasPrefix(got[i].Err, want[i].Err) {
			got[i].Err = want[i].Err
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("handshakes after each change (-want +got):\n%s", diff)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("unexpected warnings:\n%s", logs)
	}
}

// TestResumptionReverifies checks that a resumed session is verified
// against the truststore of the moment, not the one of the session's
// first handshake.
func TestResumptionReverifies(t *testing.T) {
	ca := testCA(t, "Edge CA")
	caB := testCA(t, "Edge CA B")
	m, _ := newTLSTestManager(t, nil)
	addKeystore(t, m, "site-1", "site", ca.issue(t, "localhost"))
	addKeystore(t, m, "me-1", "me", ca.issue(t, "node-1", withClientAuth()))
	addTruststore(t, m, "trust-a", ca)
	addTruststore(t, m, "trust-b", caB)

	must(t, m.SetRef("client-trust", "trust-a"))
	must(t, m.SetRef("server-trust", "trust-a"))
	serverCfg, err := m.ServerTLS(SSL{Keystore: "site-1", ClientAuthEnabled: true, Truststore: "ref://client-trust"})
	if err != nil {
		t.Fatal(err)
	}
	clientCfg, err := m.ClientTLS(SSL{ClientAuthEnabled: true, Keystore: "me-1", Truststore: "ref://server-trust"}, "localhost", Vars{})
	if err != nil {
		t.Fatal(err)
	}
	clientCfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	srv := startTLSServer(t, serverCfg, echo)

	for i, want := range []bool{false, true} {
		state, err := roundTrip(srv.addr, clientCfg)
		if err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		if state.DidResume != want {
			t.Fatalf("handshake %d: resumed = %v, want %v", i, state.DidResume, want)
		}
		srv.result(t)
	}

	// The server no longer trusts the client's CA: the resumption fails.
	must(t, m.SetRef("client-trust", "trust-b"))
	_, err = roundTrip(srv.addr, clientCfg)
	checkErr(t, "client, server trusts CA B", err, "bad certificate")
	checkErr(t, "server, server trusts CA B", srv.result(t).err, `not trusted by truststore "trust-b"`)

	// Nor does the client trust the server's.
	must(t, m.SetRef("client-trust", "trust-a"))
	if _, err := roundTrip(srv.addr, clientCfg); err != nil { // a fresh session
		t.Fatal(err)
	}
	srv.result(t)
	must(t, m.SetRef("server-trust", "trust-b"))
	state, err := roundTrip(srv.addr, clientCfg)
	checkErr(t, "client, client trusts CA B", err, `not trusted by truststore "trust-b"`)
	if err == nil {
		t.Errorf("resumed = %v", state.DidResume)
	}
	srv.result(t)
}

// TestHandshakeTimeResolutionFailure removes what a config names after it
// is built: the handshake fails naming it, and the warning is rate-limited.
func TestHandshakeTimeResolutionFailure(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	ca := testCA(t, "Edge CA")
	m, logs := newTLSTestManager(t, now)
	addKeystore(t, m, "site-1", "site", ca.issue(t, "localhost"))
	must(t, m.SetRef("site", "site-1"))
	addTruststore(t, m, "backends", ca)

	serverCfg, err := m.ServerTLS(SSL{Keystore: "ref://site"})
	if err != nil {
		t.Fatal(err)
	}
	clientCfg, err := m.ClientTLS(SSL{Truststore: "backends"}, "localhost", Vars{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, serverCfg, echo)
	if _, err := roundTrip(srv.addr, clientCfg); err != nil {
		t.Fatal(err)
	}
	srv.result(t)

	must(t, m.DeleteRef("site"))
	const serverErr = `keystore: server certificate: ssl.keystore: reference "site": not found`
	const serverLog = `level=WARN msg="tls handshake refused: store lookup failed" error="keystore: server certificate: ssl.keystore: reference \"site\": not found"`
	for i, advance := range []time.Duration{0, time.Second, logEvery} {
		skew.Add(int64(advance))
		_, err := roundTrip(srv.addr, &tls.Config{RootCAs: poolOf(ca), ServerName: "localhost"})
		checkErr(t, fmt.Sprintf("handshake %d", i), err, "internal error")
		checkErr(t, fmt.Sprintf("server handshake %d", i), srv.result(t).err, serverErr)
	}
	// Logged at the first failure, not the second (1 s later), again with
	// the count of suppressed ones after logEvery.
	if got := strings.Count(logs.String(), serverLog); got != 2 {
		t.Errorf("logged %d times, want 2:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), "suppressed=1") {
		t.Errorf("logs lack suppressed=1:\n%s", logs)
	}

	must(t, m.SetRef("site", "site-1"))
	must(t, m.DeleteStore("backends"))
	_, err = roundTrip(srv.addr, clientCfg)
	checkErr(t, "client after its truststore is deleted", err, `keystore: verify server "localhost": ssl.truststore: truststore "backends": not found`)
	if want := `error="keystore: verify server \"localhost\": ssl.truststore: truststore \"backends\": not found"`; !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %s:\n%s", want, logs)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := testCA(t, "Edge CA")
	m, _ := newTLSTestManager(t, nil)
	addKeystore(t, m, "site-1", "site", ca.issue(t, "localhost"))
	addKeystore(t, m, "multi", "a", ca.issue(t, "a"))
	b := ca.issue(t, "b")
	must(t, m.PutEntry("multi", "b", b.Key, []*x509.Certificate{b.Cert}))
	must(t, m.CreateStore("empty", KindKeystore))
	addTruststore(t, m, "clients", ca)
	must(t, m.SetRef("site", "site-1"))
	must(t, m.SetRef("trust", "clients"))

	server := func(ssl SSL) func() error {
		return func() error { _, err := m.ServerTLS(ssl); return err }
	}
	client := func(ssl SSL, vars Vars) func() error {
		return func() error { _, err := m.ClientTLS(ssl, "localhost", vars); return err }
	}
	tests := []struct {
		name   string
		build  func() error
		want   string
		wantIs error
	}{
		{"server unknown reference", server(SSL{Keystore: "ref://nope"}),
			`ssl.keystore: reference "nope": not found`, ErrNotFound},
		{"server reference to a truststore", server(SSL{Keystore: "ref://trust"}),
			`ssl.keystore: ref://trust names truststore "clients" where a keystore is needed: wrong kind of store`, ErrWrongKind},
		{"server truststore by name", server(SSL{Keystore: "clients"}),
			`ssl.keystore: clients names truststore "clients" where a keystore is needed: wrong kind of store`, ErrWrongKind},
		{"server unknown keystore", server(SSL{Keystore: "nope"}),
			`ssl.keystore: keystore "nope": not found`, ErrNotFound},
		{"server unknown alias", server(SSL{Keystore: "site-1", KeyAlias: "www"}),
			`ssl.keystore: keystore "site-1": alias "www": not found`, ErrNotFound},
		{"server unknown alias through a reference", server(SSL{Keystore: "ref://site", KeyAlias: "www"}),
			`ssl.keystore ref://site: keystore "site-1": alias "www": not found`, ErrNotFound},
		{"server several aliases, none named", server(SSL{Keystore: "multi"}),
			`ssl.keystore: keystore "multi" has 2 aliases; set key_alias`, nil},
		{"server empty keystore", server(SSL{Keystore: "empty"}),
			`ssl.keystore: keystore "empty" is empty`, nil},
		{"server no built-in certificate", server(SSL{}),
			`ssl.keystore is empty and the built-in certificate served in its place has not been generated: keystore "builtin": not found`, ErrNotFound},
		{"server alias without keystore", server(SSL{KeyAlias: "site"}),
			`ssl.key_alias "site": set, but no keystore is named`, nil},
		{"server client auth without truststore", server(SSL{Keystore: "site-1", ClientAuthEnabled: true}),
			`ssl.truststore: required when client_auth_enabled is true (client certificates are verified against it)`, nil},
		{"server client auth, truststore reference to a keystore", server(SSL{Keystore: "site-1", ClientAuthEnabled: true, Truststore: "ref://site"}),
			`ssl.truststore: ref://site names keystore "site-1" where a truststore is needed: wrong kind of store`, ErrWrongKind},
		{"server client auth, unknown truststore reference", server(SSL{Keystore: "site-1", ClientAuthEnabled: true, Truststore: "ref://nope"}),
			`ssl.truststore: reference "nope": not found`, ErrNotFound},
		{"server min version", server(SSL{Keystore: "site-1", MinVersion: "1.1"}),
			`ssl.min_version "1.1" is not one of 1.2, 1.3`, nil},
		{"server variable", server(SSL{Keystore: "{ssl.keystore}"}),
			`ssl.keystore "{ssl.keystore}": variables are allowed only on target endpoints`, nil},
		{"server common name", server(SSL{Keystore: "site-1", CommonName: "a.host.com"}),
			`ssl.common_name: only outbound connections check the peer's name; remove it from the virtual host`, nil},
		{"server ignore validation errors", server(SSL{Keystore: "site-1", IgnoreValidationErrors: true}),
			`ssl.ignore_validation_errors: applies only to outbound connections`, nil},
		{"client unknown truststore reference", client(SSL{Truststore: "ref://nope"}, Vars{}),
			`ssl.truststore: reference "nope": not found`, ErrNotFound},
		{"client truststore names a keystore", client(SSL{Truststore: "site-1"}, Vars{}),
			`ssl.truststore: site-1 names keystore "site-1" where a truststore is needed: wrong kind of store`, ErrWrongKind},
		{"client keystore reference to a truststore", client(SSL{ClientAuthEnabled: true, Keystore: "ref://trust"}, Vars{}),
			`ssl.keystore: ref://trust names truststore "clients" where a keystore is needed: wrong kind of store`, ErrWrongKind},
		{"client auth without keystore", client(SSL{ClientAuthEnabled: true}, Vars{}),
			`ssl.keystore: required when client_auth_enabled is true (the client certificate comes from it)`, nil},
		{"client empty variable", client(SSL{ClientAuthEnabled: true, Keystore: "{ssl.keystore}"}, Vars{}),
			`ssl.keystore: variable {ssl.keystore} has no value for this request`, nil},
		{"client variable naming an unknown keystore", client(SSL{ClientAuthEnabled: true, Keystore: "{ssl.keystore}"}, Vars{Keystore: "ghost"}),
			`ssl.keystore: keystore "ghost": not found`, ErrNotFound},
		{"client variable in the wrong field", client(SSL{Truststore: "{ssl.keystore}"}, Vars{Keystore: "site-1"}),
			`ssl.truststore "{ssl.keystore}": the only variable allowed here is {ssl.truststore}, as the whole value`, nil},
		{"client wildcard without common name", client(SSL{WildcardMatch: true}, Vars{}),
			`ssl.wildcard_match: set, but common_name is empty`, nil},
		{"client min version", client(SSL{MinVersion: "1.0"}, Vars{}),
			`ssl.min_version "1.0" is not one of 1.2, 1.3`, nil},
		{"client no server name", func() error { _, err := m.ClientTLS(SSL{}, "", Vars{}); return err },
			`no server name to verify the server's certificate against; pass one or set ssl.common_name`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			if err == nil {
				t.Fatalf("built, want error %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func TestNameMatches(t *testing.T) {
	ca := testCA(t, "Edge CA")
	tests := []struct {
		cn       string
		dns      []string
		want     string
		wildcard bool
		match    bool
	}{
		{"a.host.com", nil, "a.host.com", false, true},
		{"a.host.com", nil, "A.HOST.COM", false, true},
		{"x", []string{"a.host.com"}, "a.host.com", false, true},
		{"a.host.com", nil, "b.host.com", false, false},
		{"a.host.com", nil, "*.host.com", true, true},
		{"a.host.com", nil, "*.host.com", false, false},
		{"*.host.com", nil, "*.host.com", false, true},
		{"a.b.host.com", nil, "*.host.com", true, false},
		{"host.com", nil, "*.host.com", true, false},
		{".host.com", nil, "*.host.com", true, false},
		{"ahost.com", nil, "*.host.com", true, false},
		{"x", []string{"y.other.com", "B.Host.Com"}, "*.host.com", true, true},
		{"a.host.com.evil", nil, "*.host.com", true, false},
		{"a.host.com", nil, "*host.com", true, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %v ~ %s wildcard=%v", tt.cn, tt.dns, tt.want, tt.wildcard)
		t.Run(name, func(t *testing.T) {
			c := ca.issue(t, tt.cn, withDNS(tt.dns...))
			if got := nameMatches(c.Cert, tt.want, tt.wildcard); got != tt.match {
				t.Errorf("nameMatches = %v, want %v", got, tt.match)
			}
		})
	}
}

// openssl runs the openssl command with args, bounded by a timeout, stdin
// from stdin, and returns what it printed.
func openssl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	path := requirePeer(t, "openssl")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("openssl %s: timed out:\n%s", strings.Join(args, " "), out)
	}
	return string(out), err
}

// writePEM writes the key and certificate of c to dir as name.key and
// name.pem and returns their paths.
func writePEM(t *testing.T, dir, name string, c *testCert) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	must(t, os.WriteFile(cert, c.CertPEM, 0o600))
	must(t, os.WriteFile(key, c.KeyPEM, 0o600))
	return cert, key
}

// TestServerTLSOpenSSLClient has openssl s_client, an independent TLS
// implementation, connect to ServerTLS listeners.
func TestServerTLSOpenSSLClient(t *testing.T) {
	requirePeer(t, "openssl")
	dir := t.TempDir()
	ca := testCA(t, "Edge CA")
	other := testCA(t, "Other CA")
	caFile, _ := writePEM(t, dir, "ca", ca)
	clientCert, clientKey := writePEM(t, dir, "client", ca.issue(t, "client-1", withClientAuth()))
	foreignCert, foreignKey := writePEM(t, dir, "foreign", other.issue(t, "intruder", withClientAuth()))

	m, _ := newTLSTestManager(t, nil)
	addKeystore(t, m, "site-1", "site", ca.issue(t, "localhost"))
	addTruststore(t, m, "clients", ca)
	must(t, m.SetRef("site", "site-1"))
	must(t, m.SetRef("clients", "clients"))

	oneWay := SSL{Keystore: "ref://site"}
	twoWay := SSL{Keystore: "ref://site", ClientAuthEnabled: true, Truststore: "ref://clients"}
	tests := []struct {
		name          string
		ssl           SSL
		args          []string
		wantOut       []string
		wantServerErr string
	}{
		{name: "one-way", ssl: oneWay, wantOut: []string{"Verify return code: 0 (ok)", "hello from edgefort"}},
		{name: "one-way TLS 1.2", ssl: oneWay, args: []string{"-tls1_2"}, wantOut: []string{"Verify return code: 0 (ok)", "Protocol  : TLSv1.2", "hello from edgefort"}},
		{name: "two-way", ssl: twoWay, args: []string{"-cert", clientCert, "-key", clientKey}, wantOut: []string{"Verify return code: 0 (ok)", "hello from edgefort"}},
		{name: "two-way foreign client certificate", ssl: twoWay, args: []string{"-cert", foreignCert, "-key", foreignKey},
			wantOut: []string{"alert bad certificate"}, wantServerErr: `not trusted by truststore "clients"`},
		{name: "two-way without client certificate", ssl: twoWay,
			wantOut: []string{"alert certificate required"}, wantServerErr: "client didn't provide a certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := m.ServerTLS(tt.ssl)
			if err != nil {
				t.Fatal(err)
			}
			srv := startTLSServer(t, cfg, greet)
			args := append([]string{"s_client", "-connect", srv.addr, "-servername", "localhost",
				"-verify_hostname", "localhost", "-CAfile", caFile, "-verify_return_error", "-ign_eof"}, tt.args...)
			out, err := openssl(t, "", args...)
			if tt.wantServerErr == "" && err != nil {
				t.Errorf("s_client failed: %v\n%s", err, out)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("s_client output lacks %q:\n%s", want, out)
				}
			}
			if tt.wantServerErr != "" && strings.Contains(out, "hello from edgefort") {
				t.Errorf("refused client got the greeting:\n%s", out)
			}
			checkErr(t, "server", srv.result(t).err, tt.wantServerErr)
		})
	}
}

// TestClientTLSOpenSSLServer has ClientTLS configs connect to openssl
// s_server.
func TestClientTLSOpenSSLServer(t *testing.T) {
	requirePeer(t, "openssl")
	dir := t.TempDir()
	ca := testCA(t, "Edge CA")
	other := testCA(t, "Other CA")
	caFile, _ := writePEM(t, dir, "ca", ca)
	siteCert, siteKey := writePEM(t, dir, "site", ca.issue(t, "localhost"))
	strangerCert, strangerKey := writePEM(t, dir, "stranger", other.issue(t, "localhost"))

	m, _ := newTLSTestManager(t, nil)
	addTruststore(t, m, "backends", ca)
	addKeystore(t, m, "node", "node", ca.issue(t, "node-7", withClientAuth()))

	tests := []struct {
		name    string
		server  []string
		ssl     SSL
		wantErr string
		wantOut string // in s_server's output
	}{
		{name: "one-way", server: []string{"-cert", siteCert, "-key", siteKey},
			ssl: SSL{Truststore: "backends"}},
		{name: "one-way TLS 1.2", server: []string{"-cert", siteCert, "-key", siteKey, "-no_tls1_3"},
			ssl: SSL{Truststore: "backends"}},
		{name: "two-way", server: []string{"-cert", siteCert, "-key", siteKey, "-Verify", "1", "-CAfile", caFile, "-verify_return_error"},
			ssl: SSL{Truststore: "backends", ClientAuthEnabled: true, Keystore: "node"}, wantOut: "depth=0 CN = node-7"},
		{name: "untrusted server", server: []string{"-cert", strangerCert, "-key", strangerKey},
			ssl: SSL{Truststore: "backends"}, wantErr: `not trusted by truststore "backends"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := requirePeer(t, "openssl")
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			args := append([]string{"s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-www"}, tt.server...)
			cmd := exec.CommandContext(ctx, path, args...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout // one stream, read below
			must(t, cmd.Start())
			var out strings.Builder
			lines := bufio.NewScanner(stdout)
			addr := ""
			for addr == "" && lines.Scan() {
				fmt.Fprintln(&out, lines.Text())
				if a, ok := strings.CutPrefix(lines.Text(), "ACCEPT "); ok {
					addr = a
				}
			}
			if addr == "" {
				cancel()
				_ = cmd.Wait()
				t.Fatalf("s_server did not say where it listens:\n%s", out.String())
			}
			cfg, err := m.ClientTLS(tt.ssl, "localhost", Vars{})
			if err != nil {
				t.Fatal(err)
			}
			page, err := httpGet(addr, cfg)
			checkErr(t, "client", err, tt.wantErr)
			if err == nil && !strings.HasPrefix(page, "HTTP/1.0 200 ok") {
				t.Errorf("s_server answered:\n%s", page)
			}
			// s_server exits after its one connection; ctx bounds the wait.
			rest, _ := io.ReadAll(stdout)
			out.Write(rest)
			_ = cmd.Wait()
			if tt.wantOut != "" && !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("s_server output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}

// httpGet asks s_server -www for its status page.
func httpGet(addr string, cfg *tls.Config) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return "", err
	}
	page, err := io.ReadAll(conn)
	return string(page), err
}
