package authapi

import (
	"crypto/x509"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/keystore"
)

// TestNewRefuses: the API is two-way TLS only, with bounded settings; each
// problem names its field.
func TestNewRefuses(t *testing.T) {
	stores, err := keystore.Open(keystore.Options{Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	must(t, stores.CreateStore("modules", keystore.KindTruststore))
	key, cert := newCA(t, "CA").issue(t, "api.example")
	must(t, stores.CreateStore("api", keystore.KindKeystore))
	must(t, stores.PutEntry("api", "tls", key, []*x509.Certificate{cert}))
	off := false
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no listen", Config{}, []string{"listen: required"}},
		{"one-way TLS", Config{Listen: "127.0.0.1:0", SSL: keystore.SSL{Truststore: "modules"}}, []string{"ssl.client_auth_enabled: must be true"}},
		{"no truststore", Config{Listen: "127.0.0.1:0", SSL: keystore.SSL{ClientAuthEnabled: true}}, []string{"ssl.truststore: required"}},
		{"plain HTTP", Config{Listen: "127.0.0.1:0", SSL: keystore.SSL{Enabled: &off, ClientAuthEnabled: true, Truststore: "modules"}}, []string{"ssl.enabled: must be true"}},
		{"bounds", Config{Listen: "127.0.0.1:0", SSL: keystore.SSL{ClientAuthEnabled: true, Truststore: "modules"}, MaxBodyBytes: 1,
			Tickets: Tickets{TTL: time.Hour, Max: -1}, Sessions: Sessions{IdleTimeout: 2 * time.Hour, AbsoluteTimeout: time.Hour}},
			[]string{"max_body_bytes: 1 is out of range", "tickets.ttl: 1h0m0s is out of range", "tickets.max: -1 is out of range", "sessions.idle_timeout: 2h0m0s is out of range"}},
		{"unknown truststore", Config{Listen: "127.0.0.1:0", SSL: keystore.SSL{ClientAuthEnabled: true, Keystore: "api", Truststore: "nope"}}, []string{"ssl.truststore", "nope"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, Deps{Keystores: stores})
			if err == nil {
				t.Fatal("New accepted it")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestValidationURLPlainHTTPOnlyOnLoopback: every user's session token is
// posted to the validation URL, so plain http is refused unless the
// portal is on this machine.
func TestValidationURLPlainHTTPOnlyOnLoopback(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://portal.example/validate", true},
		{"http://localhost:8080/validate", true},
		{"http://127.0.0.1:8080/validate", true},
		{"http://[::1]:8080/validate", true},
		{"http://portal.example/validate", false},
		{"http://10.0.0.5/validate", false},
		{"http://localhost.evil.example/validate", false},
	} {
		c := SessionModuleConfig{Cookie: "portal", ValidationURL: tt.url, ValidationCache: time.Minute}
		err := c.Validate()
		if ok := err == nil; ok != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "validation_url") {
			t.Errorf("%s: error %q does not name validation_url", tt.url, err)
		}
	}
}
