package clientapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/keystore"
)

func selfSigned(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// startServer runs a Server for vhosts until the test ends and returns it
// once it is listening.
func startServer(t *testing.T, vhosts []VirtualHost, stores *keystore.Manager) *Server {
	t.Helper()
	srv, err := New(vhosts, stores, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for srv.bound.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("server did not bind")
		}
		time.Sleep(time.Millisecond)
	}
	return srv
}

func TestVirtualHosts(t *testing.T) {
	stores, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	key, cert := selfSigned(t, "hub.example")
	if err := stores.CreateStore("hub", keystore.KindKeystore); err != nil {
		t.Fatal(err)
	}
	if err := stores.PutEntry("hub", "tls", key, []*x509.Certificate{cert}); err != nil {
		t.Fatal(err)
	}
	on := true
	srv := startServer(t, []VirtualHost{
		{Name: "plain", Listen: "127.0.0.1:0", HostAliases: []string{"edge.example"}},
		{Name: "secure", Listen: "127.0.0.1:0", SSL: keystore.SSL{Enabled: &on, Keystore: "hub", MinVersion: "1.2"}},
	}, stores)
	urls := srv.URLs()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hub.example"}}}

	tests := []struct {
		name, url, host string
		wantCode        int
		wantBody        string
	}{
		{"plain healthz via alias", urls["plain"] + "/healthz", "edge.example:8080", 200, "ok"},
		{"plain, unknown host", urls["plain"] + "/healthz", "other.example", 421, "does not serve other.example"},
		{"tls healthz", urls["secure"] + "/healthz", "", 200, "ok"},
		{"tls, unknown path", urls["secure"] + "/nope", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.HasPrefix(tt.url, "http") {
				t.Fatalf("bad url %q", tt.url)
			}
			req, _ := http.NewRequest("GET", tt.url, nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	if !strings.HasPrefix(urls["secure"], "https://127.0.0.1:") || strings.HasSuffix(urls["secure"], ":0") {
		t.Errorf("URL of the TLS host = %q, want https with the bound port", urls["secure"])
	}
}

func TestNewNamesTheSettingThatDoesNotResolve(t *testing.T) {
	stores, _ := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	on := true
	_, err := New([]VirtualHost{
		{Name: "a", Listen: "127.0.0.1:0"},
		{Name: "b", Listen: "127.0.0.1:0", SSL: keystore.SSL{Enabled: &on, Keystore: "ref://gone", MinVersion: "1.2"}},
	}, stores, slog.New(slog.DiscardHandler))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "clients.virtual_hosts[1].ssl" || !strings.Contains(err.Error(), `reference "gone"`) {
		t.Fatalf("New = %v, want a FieldError for clients.virtual_hosts[1].ssl about the reference", err)
	}
}

func TestListenConflictFailsRun(t *testing.T) {
	stores, _ := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	first := startServer(t, []VirtualHost{{Name: "a", Listen: "127.0.0.1:0"}}, stores)
	taken := strings.TrimPrefix(first.URLs()["a"], "http://")
	srv, err := New([]VirtualHost{{Name: "b", Listen: taken}}, stores, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "virtual host b: listen "+taken) {
		t.Fatalf("Run on a taken address = %v", err)
	}
}
