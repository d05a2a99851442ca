package keystore

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// benchSetup is a manager with a listener's keystore behind ref://site, a
// client's keystore behind ref://me and a truststore behind ref://trust,
// all certificates ECDSA P-256 from one CA.
type benchSetup struct {
	m          *Manager
	ca, site   *testCert
	clientCert *testCert
}

func newBenchSetup(b *testing.B) *benchSetup {
	b.Helper()
	s := &benchSetup{ca: testCA(b, "Bench CA")}
	s.site = s.ca.issue(b, "localhost")
	s.clientCert = s.ca.issue(b, "node-1", withClientAuth())
	s.m, _ = newTLSTestManager(b, nil)
	addKeystore(b, s.m, "site-1", "site", s.site)
	addKeystore(b, s.m, "me-1", "me", s.clientCert)
	addTruststore(b, s.m, "trust-1", s.ca)
	for ref, store := range map[string]string{"site": "site-1", "me": "me-1", "trust": "trust-1"} {
		if err := s.m.SetRef(ref, store); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkServerCertificateLookup is the per-handshake resolution alone:
// the callbacks crypto/tls calls, as a handshake calls them, without the
// handshake. Compare with BenchmarkFullHandshake in the same run.
func BenchmarkServerCertificateLookup(b *testing.B) {
	s := newBenchSetup(b)
	hello := &tls.ClientHelloInfo{ServerName: "localhost"}
	for _, bc := range []struct {
		name string
		ssl  SSL
	}{
		{"by-name", SSL{Keystore: "site-1", KeyAlias: "site"}},
		{"by-ref", SSL{Keystore: "ref://site", KeyAlias: "site"}},
		{"by-ref-only-alias", SSL{Keystore: "ref://site"}},
	} {
		b.Run("GetCertificate/"+bc.name, func(b *testing.B) {
			cfg, err := s.m.ServerTLS(bc.ssl)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if c, err := cfg.GetCertificate(hello); err != nil || c == nil {
					b.Fatal(c, err)
				}
			}
		})
	}
	b.Run("GetClientCertificate/by-ref", func(b *testing.B) {
		cfg, err := s.m.ClientTLS(SSL{ClientAuthEnabled: true, Keystore: "ref://me", Truststore: "ref://trust"}, "localhost", Vars{})
		if err != nil {
			b.Fatal(err)
		}
		req := &tls.CertificateRequestInfo{}
		b.ReportAllocs()
		for b.Loop() {
			if c, err := cfg.GetClientCertificate(req); err != nil || c == nil {
				b.Fatal(c, err)
			}
		}
	})
	// VerifyConnection resolves the truststore and verifies the peer's
	// chain: the x509 work crypto/tls would otherwise do itself.
	b.Run("VerifyConnection/server-by-ref", func(b *testing.B) {
		cfg, err := s.m.ClientTLS(SSL{Truststore: "ref://trust"}, "localhost", Vars{})
		if err != nil {
			b.Fatal(err)
		}
		state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{s.site.Cert}}
		b.ReportAllocs()
		for b.Loop() {
			if err := cfg.VerifyConnection(state); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("VerifyConnection/client-cert-by-ref", func(b *testing.B) {
		cfg, err := s.m.ServerTLS(SSL{Keystore: "ref://site", ClientAuthEnabled: true, Truststore: "ref://trust"})
		if err != nil {
			b.Fatal(err)
		}
		state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{s.clientCert.Cert}}
		b.ReportAllocs()
		for b.Loop() {
			if err := cfg.VerifyConnection(state); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFullHandshake is a complete TLS 1.3 handshake (ECDSA P-256,
// X25519) over net.Pipe: crypto/tls with fixed certificates and pools
// ("static"), then the same with ServerTLS and ClientTLS configs that
// resolve ref:// stores per handshake ("keystore").
func BenchmarkFullHandshake(b *testing.B) {
	s := newBenchSetup(b)
	pool := poolOf(s.ca)
	serverKS, err := s.m.ServerTLS(SSL{Keystore: "ref://site", MinVersion: "1.3"})
	if err != nil {
		b.Fatal(err)
	}
	clientKS, err := s.m.ClientTLS(SSL{Truststore: "ref://trust", MinVersion: "1.3"}, "localhost", Vars{})
	if err != nil {
		b.Fatal(err)
	}
	serverMTLS, err := s.m.ServerTLS(SSL{Keystore: "ref://site", MinVersion: "1.3", ClientAuthEnabled: true, Truststore: "ref://trust"})
	if err != nil {
		b.Fatal(err)
	}
	clientMTLS, err := s.m.ClientTLS(SSL{Truststore: "ref://trust", MinVersion: "1.3", ClientAuthEnabled: true, Keystore: "ref://me"}, "localhost", Vars{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name           string
		server, client *tls.Config
	}{
		{"static", &tls.Config{Certificates: []tls.Certificate{tlsCertOf(s.site)}, MinVersion: tls.VersionTLS13},
			&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}},
		{"keystore", serverKS, clientKS},
		{"static-mtls", &tls.Config{Certificates: []tls.Certificate{tlsCertOf(s.site)}, MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool},
			&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{tlsCertOf(s.clientCert)}}},
		{"keystore-mtls", serverMTLS, clientMTLS},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				handshakePipe(b, bc.server, bc.client)
			}
		})
	}
}

// handshakePipe runs one handshake between server and client over
// net.Pipe and waits for both ends.
func handshakePipe(b *testing.B, server, client *tls.Config) {
	sc, cc := net.Pipe()
	done := make(chan error, 1)
	go func() {
		srv := tls.Server(sc, server)
		err := srv.Handshake()
		if err == nil {
			// TLS 1.3 verifies a client certificate after the client's
			// side is done; reading the client's byte waits for that.
			_, err = srv.Read(make([]byte, 1))
		}
		sc.Close()
		done <- err
	}()
	cli := tls.Client(cc, client)
	err := cli.Handshake()
	if err == nil {
		_, err = cli.Write([]byte{1})
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	cc.Close()
}
