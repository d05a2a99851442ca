package clientapi

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// TestRotationUnderLoad: the virtual host's ref:// reference is repointed
// 150 times between three keystores holding certificates for hub.example
// while clients send authenticated requests through a route, some on a new
// TLS connection each time, some on kept-alive HTTP/1.1 and HTTP/2
// connections: no handshake and no request fails, and each certificate is
// served.
func TestRotationUnderLoad(t *testing.T) {
	const repoints = 150
	r := newRig(t)
	r.authz.permit("alice app.read app/sales/a1")
	stores := []string{"hub"}
	for _, name := range []string{"hub2", "hub3"} {
		key, cert := r.pki.issue(t, "hub.example")
		must(t, r.stores.CreateStore(name, keystore.KindKeystore))
		must(t, r.stores.PutEntry(name, "tls", key, []*x509.Certificate{cert}))
		stores = append(stores, name)
	}
	must(t, r.stores.SetRef("hub-tls", "hub"))
	target, _ := r.countingBackend(t)
	cfg := routeTo(target, time.Minute)
	vh := &cfg.VirtualHosts[0]
	vh.SSL.Keystore = "ref://hub-tls"
	sol, st := jwtFromFile(t, "")
	vh.Authentication = []Solution{{JWT: sol}}
	srv, err := New(cfg, r.deps())
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, srv)
	url := srv.URLs()["hub"] + "/x"
	token := jwttest.Valid(t, st)

	var (
		mu       sync.Mutex
		served   = map[string]int{} // serial → handshakes that got it
		failures []string
		fresh    atomic.Int64 // requests on a new connection
		kept     atomic.Int64 // requests on kept-alive connections
	)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	load := func(name string, client *http.Client, newConn bool) {
		defer wg.Done()
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("%s: %v", name, err))
			case resp.StatusCode != http.StatusOK:
				failures = append(failures, fmt.Sprintf("%s: status %d", name, resp.StatusCode))
			case newConn:
				served[resp.TLS.PeerCertificates[0].SerialNumber.String()]++
			}
			mu.Unlock()
			if newConn {
				fresh.Add(1)
			} else {
				kept.Add(1)
			}
		}
	}
	for i, c := range []struct {
		newConn, h2 bool
	}{{true, false}, {true, true}, {false, false}, {false, true}} {
		client := r.client("", c.h2)
		client.Transport.(*http.Transport).DisableKeepAlives = c.newConn
		wg.Add(1)
		go load(fmt.Sprintf("client %d (new connections %v, h2 %v)", i, c.newConn, c.h2), client, c.newConn)
	}
	for i := range repoints {
		must(t, r.stores.SetRef("hub-tls", stores[(i+1)%len(stores)]))
		n, k := fresh.Load(), kept.Load()
		// Each reference holds until requests of both kinds ran under it.
		testkit.WaitFor(t, "requests after a repoint", func() bool { return fresh.Load() > n+1 && kept.Load() > k+1 })
	}
	stop()
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d failed handshakes or requests under rotation, the first: %v", len(failures), failures[:min(5, len(failures))])
	}
	for _, name := range stores {
		st, err := r.stores.Resolve(name, keystore.KindKeystore)
		must(t, err)
		e, err := st.Entry("tls")
		must(t, err)
		if serial := e.Chain[0].SerialNumber.String(); served[serial] == 0 {
			t.Errorf("keystore %s's certificate (serial %s) was never served: %v", name, serial, served)
		}
	}
	t.Logf("%d repoints; %d requests on new connections, %d on kept-alive ones; handshakes by serial %v", repoints, fresh.Load(), kept.Load(), served)
}
