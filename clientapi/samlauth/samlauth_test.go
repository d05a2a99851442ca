package samlauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

func TestConfigValidate(t *testing.T) {
	ok := func() Config {
		return Config{BaseURL: "https://node.example:8443", IDPMetadataFile: "/etc/idp.xml"}
	}
	for _, c := range []struct {
		name  string
		edit  func(*Config)
		field string // "" valid
	}{
		{"valid", func(*Config) {}, ""},
		{"loopback http metadata url", func(c *Config) { c.IDPMetadataFile, c.IDPMetadataURL = "", "http://127.0.0.1:9/md" }, ""},
		{"no base url", func(c *Config) { c.BaseURL = "" }, "base_url"},
		{"base url with a path", func(c *Config) { c.BaseURL = "https://node.example/app" }, "base_url"},
		{"base url not http", func(c *Config) { c.BaseURL = "ftp://node.example" }, "base_url"},
		{"relative path prefix", func(c *Config) { c.PathPrefix = "saml" }, "path_prefix"},
		{"no metadata", func(c *Config) { c.IDPMetadataFile = "" }, "idp_metadata_file"},
		{"both metadata sources", func(c *Config) { c.IDPMetadataURL = "https://idp.example/md" }, "idp_metadata_file"},
		{"plain http metadata url", func(c *Config) { c.IDPMetadataFile, c.IDPMetadataURL = "", "http://idp.example/md" }, "idp_metadata_url"},
		{"refresh too often", func(c *Config) { c.MetadataRefresh = time.Second }, "metadata_refresh"},
		{"request ttl too short", func(c *Config) { c.RequestTTL = time.Second }, "request_ttl"},
		{"negative max pending", func(c *Config) { c.MaxPending = -1 }, "max_pending"},
		{"signed requests with a keystore", func(c *Config) { c.Keystore, c.SignRequests = "saml", true }, ""},
		{"signed requests without a keystore", func(c *Config) { c.SignRequests = true }, "sign_requests"},
		{"key alias without a keystore", func(c *Config) { c.KeyAlias = "sp" }, "key_alias"},
		{"single logout with a keystore", func(c *Config) { c.Keystore, c.SingleLogout = "saml", true }, ""},
		{"single logout without a keystore", func(c *Config) { c.SingleLogout = true }, "single_logout"},
		{"display name with a control character", func(c *Config) { c.DisplayName = "Corp\nIdP" }, "display_name"},
		{"display name too long", func(c *Config) { c.DisplayName = strings.Repeat("x", 101) }, "display_name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok()
			c.edit(&cfg)
			cfg.SetDefaults()
			err := cfg.Validate()
			var fe *auth.FieldError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
				t.Fatalf("Validate: %v, want a FieldError on %s", err, c.field)
			}
		})
	}
}

func TestIsLocalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/app/x?a=b": true, "/": true, "": false, "app": false, "//evil.example/": false,
		"/\\evil.example": false, "https://evil.example/": false, "/a\r\nSet-Cookie: x": false,
	} {
		if got := isLocalPath(p); got != want {
			t.Errorf("isLocalPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// The replay cache refuses an id until it expires, and refuses new ids
// when it is full of live ones; in the state store, a new cache over the
// same store (a restart, a reload) still refuses a used id, and another
// SP's cache does not.
func TestReplayCache(t *testing.T) {
	db := testkit.OpenStore(t, "")
	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			var sdb *store.DB
			if stored {
				sdb = db
			}
			testReplayCache(t, sdb)
		})
	}
	now := time.Now()
	clock := func() time.Time { return now }
	a, err := newReplayCache(db, "sp-a", 10, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Consume("x", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	again, err := newReplayCache(db, "sp-a", 10, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Consume("x", now.Add(time.Minute)); !errors.Is(err, saml.ErrAssertionReplayed) {
		t.Fatalf("after a restart: %v, want ErrAssertionReplayed", err)
	}
	other, err := newReplayCache(db, "sp-b", 10, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Consume("x", now.Add(time.Minute)); err != nil {
		t.Fatalf("another SP's id: %v", err)
	}
}

func testReplayCache(t *testing.T, db *store.DB) {
	now := time.Now()
	c, err := newReplayCache(db, t.Name(), 2, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Consume("a", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Consume("a", now.Add(time.Minute)); !errors.Is(err, saml.ErrAssertionReplayed) {
		t.Fatalf("second use: %v, want ErrAssertionReplayed", err)
	}
	if err := c.Consume("b", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Consume("c", now.Add(time.Minute)); !errors.Is(err, errReplayFull) {
		t.Fatalf("over the bound: %v, want errReplayFull", err)
	}
	now = now.Add(2 * time.Minute)
	if err := c.Consume("c", now.Add(time.Minute)); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
}

// Pending logins are taken once, and not after they expire; over the
// bound the oldest is dropped.
func TestPendingLogins(t *testing.T) {
	now := time.Now()
	p := &pendingLogins{max: 1, ttl: time.Minute, now: func() time.Time { return now }, m: map[string]pendingLogin{}}
	first, err := p.add("id-1", "/a")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	// Full: the oldest login gives way to the new one.
	tok, err := p.add("id-2", "/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.take(first); ok {
		t.Fatal("the oldest login was kept over max_pending")
	}
	if got, ok := p.take(tok); !ok || got.requestID != "id-2" || got.returnTo != "/b" {
		t.Fatalf("take: %+v %v", got, ok)
	}
	if _, ok := p.take(tok); ok {
		t.Fatal("a login was taken twice")
	}
	tok, _ = p.add("id-3", "/c")
	now = now.Add(2 * time.Minute)
	if _, ok := p.take(tok); ok {
		t.Fatal("an expired login was taken")
	}
}

func idpMetadataXML(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/md">
<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>%s</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>
</IDPSSODescriptor></EntityDescriptor>`, base64.StdEncoding.EncodeToString(der))
}

// Metadata from a URL is read again once due; a failed refresh keeps the
// last good copy, and a body over the bound is refused.
func TestMetadataRefresh(t *testing.T) {
	good := idpMetadataXML(t)
	var failing atomic.Bool
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, good)
	}))
	t.Cleanup(srv.Close)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	m := &idpMetadata{url: srv.URL, refresh: time.Hour, client: srv.Client(),
		now: func() time.Time { return time.Unix(0, now.Load()) }, log: discard()}
	md, err := m.get(context.Background())
	if err != nil || md.EntityID != "https://idp.example/md" {
		t.Fatalf("first read: %v %v", md, err)
	}
	failing.Store(true)
	now.Add(int64(2 * time.Hour))
	if md, err = m.reload(context.Background()); err != nil || md.EntityID != "https://idp.example/md" {
		t.Fatalf("failed refresh: %v %v, want the last good copy", md, err)
	}
	if hits.Load() != 2 {
		t.Fatalf("%d fetches, want 2", hits.Load())
	}

	// A file over the bound.
	big := filepath.Join(t.TempDir(), "big.xml")
	if err := os.WriteFile(big, []byte(strings.Repeat(" ", maxMetadataBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{BaseURL: "https://node.example", IDPMetadataFile: big}, Deps{})
	if err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("New with an oversized metadata file: %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
