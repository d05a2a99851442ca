package keystore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRotationUnderLoad replaces the certificate of a listener over and
// over while clients handshake with it non-stop, the documented way
// (a new keystore with the same alias, then repoint the reference) and by
// replacing the alias in place. No handshake may fail, none that started
// after a change returned may see an older certificate, and a connection
// made before the changes keeps working.
func TestRotationUnderLoad(t *testing.T) {
	const (
		workers = 8
		rounds  = 120 // changes; every 10th replaces the alias in place
	)
	ca := testCA(t, "Rotation CA")
	m, logs := newTLSTestManager(t, nil)

	// Each certificate carries its generation in its CN: gen-<n>.
	issue := func(gen int) *testCert { return ca.issue(t, fmt.Sprintf("gen-%d", gen), withDNS("localhost")) }
	generation := func(cert *x509.Certificate) int {
		var gen int
		if _, err := fmt.Sscanf(cert.Subject.CommonName, "gen-%d", &gen); err != nil {
			t.Errorf("served certificate %q: %v", cert.Subject, err)
			return -1
		}
		return gen
	}
	addKeystore(t, m, "rot-0", "site", issue(0))
	must(t, m.SetRef("rot", "rot-0"))

	cfg, err := m.ServerTLS(SSL{Keystore: "ref://rot", KeyAlias: "site"})
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, cfg, echo)

	// A connection made before any change.
	longLived, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.addr, &tls.Config{RootCAs: poolOf(ca), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer longLived.Close()
	if err := ping(longLived); err != nil {
		t.Fatal(err)
	}

	var (
		current    atomic.Int64 // generation whose change has returned
		handshakes atomic.Int64
		stop       atomic.Bool
		wg         sync.WaitGroup

		mu       sync.Mutex
		failures []string // guarded by mu
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for w := range workers {
		clientCfg := &tls.Config{RootCAs: poolOf(ca), ServerName: "localhost"}
		if w%2 == 1 {
			clientCfg.MaxVersion = tls.VersionTLS12
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				want := int(current.Load())
				state, err := roundTrip(srv.addr, clientCfg)
				handshakes.Add(1)
				if err != nil {
					fail("worker %d: handshake: %v", w, err)
					continue
				}
				if got := generation(state.PeerCertificates[0]); got < want {
					fail("worker %d: served generation %d after generation %d was in place", w, got, want)
				}
			}
		}()
	}

	pointed := "rot-0" // the keystore ref://rot points at
	for gen := 1; gen <= rounds; gen++ {
		c := issue(gen)
		if gen%10 == 0 {
			must(t, m.PutEntry(pointed, "site", c.Key, []*x509.Certificate{c.Cert}))
		} else {
			name := fmt.Sprintf("rot-%d", gen)
			addKeystore(t, m, name, "site", c)
			must(t, m.SetRef("rot", name))
			// Named nowhere now; handshakes under way already hold their
			// certificate.
			must(t, m.DeleteStore(pointed))
			pointed = name
		}
		current.Store(int64(gen))
		// Let a few handshakes through before the next change, bounded.
		seen := handshakes.Load()
		for deadline := time.Now().Add(2 * time.Second); handshakes.Load() < seen+workers/2 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
	}
	stop.Store(true)
	wg.Wait()

	if len(failures) > 0 {
		t.Errorf("%d of %d handshakes went wrong; first ones:\n%s", len(failures), handshakes.Load(), strings.Join(failures[:min(len(failures), 10)], "\n"))
	}
	if n := srv.failed.Load(); n != 0 {
		t.Errorf("server saw %d failed handshakes", n)
	}
	if got, want := handshakes.Load(), int64(rounds); got < want {
		t.Errorf("only %d handshakes during %d changes", got, want)
	}
	if err := ping(longLived); err != nil {
		t.Errorf("connection made before the changes: %v", err)
	}
	if got := generation(longLived.ConnectionState().PeerCertificates[0]); got != 0 {
		t.Errorf("connection made before the changes reports generation %d, want 0", got)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("unexpected warnings:\n%s", logs)
	}
	t.Logf("%d handshakes across %d changes", handshakes.Load(), rounds)
}
