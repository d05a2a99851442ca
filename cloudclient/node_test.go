package cloudclient

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgefort/edgefort/cloudclient/outbox"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/keystore"
)

// nodeConfig is a defaulted cloud section.
func nodeConfig() Config {
	return Config{Enabled: true, Timeout: 5 * time.Second, Authorization: Authorization{
		CacheSize: DefaultAuthzCacheSize, MaxTTL: DefaultAuthzMaxTTL, MaxNegativeTTL: DefaultAuthzMaxNegTTL,
		WhenUnreachable: FailClosed, MaxStaleness: DefaultAuthzMaxStaleness,
	}}
}

// TestNodeNotEnrolled: a node without an enrollment is a problem of the
// field cloud.enabled, and nothing is built.
func TestNodeNotEnrolled(t *testing.T) {
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	ks, err := keystore.Open(keystore.Options{Dir: filepath.Join(dir, "keystores"), Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(nodeConfig(), NodeDeps{Store: db, Keystores: ks})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "cloud.enabled" || n != nil {
		t.Fatalf("NewNode = %v, %v; want a FieldError on cloud.enabled", n, err)
	}
}

// TestNodeDevcloud: a Node built from the enrollment an `edgefort enroll`
// leaves (the stores behind RefDeviceTLS and RefCloudTrust, the record in
// the state store) talks to the control plane as the enrolled device over
// mutual TLS: its authorizer gets the policy's answer and its outbox
// delivers a report.
func TestNodeDevcloud(t *testing.T) {
	tc := newTestCloud(t, nil)
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	ks, err := keystore.Open(keystore.Options{Dir: filepath.Join(dir, "keystores"), Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	e := enrollInto(t, tc, db, ks)

	n, err := NewNode(nodeConfig(), NodeDeps{Store: db, Keystores: ks, Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if n.BaseURL() != tc.cp.URL() || n.Enrollment().DeviceID != e.DeviceID {
		t.Errorf("BaseURL, DeviceID = %s, %s; want %s, %s", n.BaseURL(), n.Enrollment().DeviceID, tc.cp.URL(), e.DeviceID)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	d, err := n.Authorizer().Decide(ctx, aliceReads("sales"))
	if err != nil || !d.Allow {
		t.Fatalf("Decide(alice reads sales) = %+v, %v; want allow", d, err)
	}
	if _, err := n.Outbox().Enqueue(ctx, outbox.Item{Stream: "test", Type: "test.event", Body: json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	specs := n.Components()
	if len(specs) != 1 || specs[0].Name != "outbox" {
		t.Fatalf("Components = %+v, want the outbox", specs)
	}
	done := make(chan error, 1)
	go func() { done <- specs[0].Runner.Run(ctx) }()
	testkit.WaitFor(t, "the report recorded", func() bool { return tc.cp.Stats().ReportsRecorded == 1 })
	cancel()
	<-done
}

// enrollInto enrolls a fresh key and stores the identity as `edgefort
// enroll` does.
func enrollInto(t *testing.T, tc *testCloud, db *store.DB, ks *keystore.Manager) *Enrollment {
	t.Helper()
	key := newTestKey(t, "ec")
	resp, err := Enroll(t.Context(), EnrollOptions{
		BaseURL: tc.cp.URL(), HTTP: tc.http, Token: tc.cp.NewEnrollmentToken(), Key: key, Hostname: "node-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &Enrollment{DeviceID: resp.DeviceID, Endpoints: resp.Endpoints, Keystore: "device-1", Truststore: "cloud-ca-1", Enrolled: time.Now()}
	for _, step := range []func() error{
		func() error { return ks.CreateStore(e.Keystore, keystore.KindKeystore) },
		func() error { return ks.PutEntry(e.Keystore, DeviceAlias, key, testCerts(t, resp.CertificateChain)) },
		func() error { return ks.CreateStore(e.Truststore, keystore.KindTruststore) },
		func() error { return ks.PutTrusted(e.Truststore, "cloud", testCerts(t, resp.CABundle)) },
		func() error { return ks.SetRef(RefDeviceTLS, e.Keystore) },
		func() error { return ks.SetRef(RefCloudTrust, e.Truststore) },
		func() error { return SaveEnrollment(db, e) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func testCerts(t *testing.T, data string) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	rest := []byte(data)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	return certs
}
