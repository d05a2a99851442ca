package keystore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/google/go-cmp/cmp"
)

// newTestManager opens a manager on dir ("" for memory) whose logs go to
// the returned buffer.
func newTestManager(t *testing.T, dir string) (*Manager, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	m, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return m, &logs
}

func TestStoresAndReferences(t *testing.T) {
	m, _ := newTestManager(t, "")
	ca := testCA(t, "ca")
	leaf := ca.issue(t, "hub", withDNS("hub.example"))
	must(t, m.CreateStore("hub-1", KindKeystore))
	must(t, m.CreateStore("trust", KindTruststore))
	must(t, m.PutEntry("hub-1", "hub", leaf.Key, []*x509.Certificate{leaf.Cert}))
	must(t, m.PutTrusted("trust", "ca", []*x509.Certificate{ca.Cert}))
	must(t, m.SetRef("hub-tls", "hub-1"))

	tests := []struct {
		name    string
		err     error
		wantErr string
		wantIs  error
	}{
		{"duplicate store", m.CreateStore("hub-1", KindTruststore), `keystore "hub-1": already exists`, ErrExists},
		{"bad name", m.CreateStore("no/slash", KindKeystore), `keystore name "no/slash": use 1-64 letters`, nil},
		{"bad kind", m.CreateStore("x", Kind("vault")), `store kind "vault": want keystore or truststore`, nil},
		{"entry into a truststore", m.PutEntry("trust", "k", leaf.Key, []*x509.Certificate{leaf.Cert}), `"trust" is a truststore, not a keystore`, ErrWrongKind},
		{"entry into a missing store", m.PutEntry("nope", "k", leaf.Key, []*x509.Certificate{leaf.Cert}), `keystore "nope": not found (create it first)`, ErrNotFound},
		{"mismatched key", m.PutEntry("hub-1", "k", ca.Key, []*x509.Certificate{leaf.Cert}), `alias "k": private key does not match the certificate`, nil},
		{"ref to a missing store", m.SetRef("r", "nope"), `reference "r": store "nope": not found`, ErrNotFound},
		{"repoint to the wrong kind", m.SetRef("hub-tls", "trust"), `reference "hub-tls" points at keystore "hub-1"; it cannot point at truststore "trust"`, ErrWrongKind},
		{"delete a referenced store", m.DeleteStore("hub-1"), `keystore "hub-1": in use by reference "hub-tls"; repoint or delete it first`, ErrInUse},
		{"delete a missing ref", m.DeleteRef("nope"), `reference "nope": not found`, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", tt.err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(tt.err, tt.wantIs) {
				t.Errorf("error %v is not %v", tt.err, tt.wantIs)
			}
		})
	}

	resolveTests := []struct {
		setting string
		kind    Kind
		want    string
		wantErr string
	}{
		{"ref://hub-tls", KindKeystore, "hub-1", ""},
		{"hub-1", KindKeystore, "hub-1", ""},
		{"trust", KindTruststore, "trust", ""},
		{"ref://nope", KindKeystore, "", `reference "nope": not found`},
		{"ref://hub-tls", KindTruststore, "", `ref://hub-tls names keystore "hub-1" where a truststore is needed`},
		{"missing", KindKeystore, "", `keystore "missing": not found`},
	}
	for _, tt := range resolveTests {
		st, err := m.Resolve(tt.setting, tt.kind)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Resolve(%q) error = %v, want %q", tt.setting, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || st.Name != tt.want):
			t.Errorf("Resolve(%q) = %v, %v; want %s", tt.setting, st, err, tt.want)
		}
	}
}

func TestRepointSwapsSnapshotOnly(t *testing.T) {
	m, _ := newTestManager(t, "")
	for _, name := range []string{"a", "b"} {
		must(t, m.CreateStore(name, KindKeystore))
		c := testLeaf(t, name)
		must(t, m.PutEntry(name, "tls", c.Key, []*x509.Certificate{c.Cert}))
	}
	must(t, m.SetRef("r", "a"))
	before := m.current()
	must(t, m.SetRef("r", "b"))
	after := m.current()
	if before == after {
		t.Fatal("repointing did not publish a new snapshot")
	}
	if before.refs["r"] != "a" || after.refs["r"] != "b" {
		t.Errorf("old snapshot changed or new one wrong: before %v, after %v", before.refs, after.refs)
	}
	if before.stores["a"] != after.stores["a"] {
		t.Error("an unchanged store was copied; snapshots should share it")
	}
}

func TestPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keystores")
	m, _ := newTestManager(t, dir)
	ca := testCA(t, "ca")
	leaf := ca.issue(t, "hub")
	must(t, m.CreateStore("hub-1", KindKeystore))
	must(t, m.PutEntry("hub-1", "hub", leaf.Key, []*x509.Certificate{leaf.Cert, ca.Cert}))
	must(t, m.CreateStore("trust", KindTruststore))
	if _, _, err := m.ImportTrusted("trust", "bundle", append(append([]byte{}, ca.CertPEM...), leaf.CertPEM...), true); err != nil {
		t.Fatal(err)
	}
	must(t, m.SetRef("hub-tls", "hub-1"))
	must(t, m.CreateStore("gone", KindKeystore))
	must(t, m.DeleteStore("gone"))

	again, _ := newTestManager(t, dir)
	if diff := cmp.Diff(m.List(), again.List()); diff != "" {
		t.Errorf("stores after reopening (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"hub-tls": "hub-1"}, again.Refs()); diff != "" {
		t.Errorf("refs after reopening: %s", diff)
	}
	st, err := again.Resolve("ref://hub-tls", KindKeystore)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := st.Entry("hub")
	if !e.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.Key.Public()) || len(e.Chain) != 2 {
		t.Errorf("reloaded entry lost its key or chain")
	}
	if _, err := os.Stat(filepath.Join(dir, storesDir, "gone")); !os.IsNotExist(err) {
		t.Errorf("deleted store still on disk: %v", err)
	}
	// Keys are private.
	fi, err := os.Stat(filepath.Join(dir, storesDir, "hub-1", "hub"+entrySuffix))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %o, want 600", fi.Mode().Perm())
	}
	// A temporary file left by a crash is ignored.
	must(t, os.WriteFile(filepath.Join(dir, storesDir, "hub-1", ".tmp-hub.pem-123"), []byte("half"), 0o600))
	if _, err := Open(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Errorf("reopen with a leftover temporary file: %v", err)
	}
}

func TestCorruptEntryNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	m, _ := newTestManager(t, dir)
	c := testLeaf(t, "x")
	must(t, m.CreateStore("s", KindKeystore))
	must(t, m.PutEntry("s", "a", c.Key, []*x509.Certificate{c.Cert}))
	file := filepath.Join(dir, storesDir, "s", "a"+entrySuffix)
	must(t, os.WriteFile(file, []byte("garbage"), 0o600))
	_, err := Open(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("Open = %v, want an error naming %s", err, file)
	}
}

func TestImportWarnsOnExpired(t *testing.T) {
	m, _ := newTestManager(t, "")
	must(t, m.CreateStore("s", KindKeystore))
	old := testLeaf(t, "old", withValidity(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)))
	warnings, err := m.ImportKeyPair("s", "a", old.KeyPEM, old.CertPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "expired") {
		t.Errorf("warnings = %q, want one about expiry", warnings)
	}
	list := m.List()
	if !list[0].Entries[0].Expired {
		t.Error("List does not flag the expired certificate")
	}
	_, err = m.ImportKeyPair("s", "b", []byte("not a key"), old.CertPEM, nil)
	if err == nil || !strings.Contains(err.Error(), "import s/b: no PEM private key found") {
		t.Errorf("garbage key: %v", err)
	}
}

func TestBuiltin(t *testing.T) {
	dir := t.TempDir()
	m, _ := newTestManager(t, dir)
	generated, err := m.EnsureBuiltin([]string{"edge.local", "127.0.0.1"})
	if err != nil || !generated {
		t.Fatalf("EnsureBuiltin = %v, %v; want a new certificate", generated, err)
	}
	first := m.current().stores[BuiltinStore].Entries[BuiltinAlias].Leaf()
	if first.VerifyHostname("edge.local") != nil || first.VerifyHostname("127.0.0.1") != nil {
		t.Errorf("built-in certificate does not cover its names: %v %v", first.DNSNames, first.IPAddresses)
	}
	again, _ := newTestManager(t, dir)
	if generated, err := again.EnsureBuiltin([]string{"edge.local"}); err != nil || generated {
		t.Errorf("second EnsureBuiltin = %v, %v; want the persisted one kept", generated, err)
	}
	if generated, err := again.EnsureBuiltin([]string{"other.local"}); err != nil || !generated {
		t.Errorf("EnsureBuiltin with a new host name = %v, %v; want a new certificate", generated, err)
	}
	list := again.List()
	if len(list) != 1 || !list[0].Builtin {
		t.Errorf("List = %+v; want the built-in store marked", list)
	}
}

func TestExpiryWatcherAndMetric(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	m, err := Open(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c := testLeaf(t, "soon", withValidity(now.Add(-time.Hour), now.Add(10*24*time.Hour)))
	must(t, m.CreateStore("s", KindKeystore))
	must(t, m.PutEntry("s", "a", c.Key, []*x509.Certificate{c.Cert}))

	w := &ExpiryWatcher{Manager: m, warned: map[string]time.Duration{}}
	steps := []struct {
		at       time.Duration // after the start
		wantLogs int           // total warnings so far
	}{
		{0, 1},                  // 10 days left: past the 30-day mark
		{time.Hour, 1},          // same threshold: no repeat
		{4 * 24 * time.Hour, 2}, // 6 days left: the 7-day mark
		{9*24*time.Hour + 12*time.Hour, 3},
		{11 * 24 * time.Hour, 4}, // expired
		{12 * 24 * time.Hour, 4},
	}
	start := now
	for _, s := range steps {
		now = start.Add(s.at)
		w.check()
		if got := strings.Count(logs.String(), "msg=\"certificate"); got != s.wantLogs {
			t.Fatalf("after %s: %d warnings, want %d:\n%s", s.at, got, s.wantLogs, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"certificate has expired\"") {
		t.Errorf("no error for the expired certificate:\n%s", logs.String())
	}

	reg := prom.NewRegistry()
	reg.MustRegister(m.ExpiryCollector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || families[0].Name != "edgefort_keystore_cert_expiry_timestamp_seconds" || families[0].Type != prom.TypeGauge {
		t.Fatalf("metrics = %v", families)
	}
	metric := families[0].Series[0]
	if got, want := metric.Value, float64(c.Cert.NotAfter.Unix()); got != want {
		t.Errorf("expiry = %v, want %v", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSymlinkedFilesRefused: a symbolic link in place of a keystore file
// is neither read (loading fails and names it) nor written through, and
// the file it points to stays as it was.
func TestSymlinkedFilesRefused(t *testing.T) {
	c := testLeaf(t, "x")
	tests := []struct {
		name string
		file string // under the keystore directory
		// act is what must fail: opening dir, or a change m makes to file.
		act func(t *testing.T, m *Manager, dir string) error
	}{
		{"entry, on load", filepath.Join(storesDir, "s", "a"+entrySuffix), func(t *testing.T, m *Manager, dir string) error {
			_, err := Open(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
			return err
		}},
		{"entry, on write", filepath.Join(storesDir, "s", "b"+entrySuffix), func(t *testing.T, m *Manager, dir string) error {
			return m.PutEntry("s", "b", c.Key, []*x509.Certificate{c.Cert})
		}},
		{"references, on load", refsFile, func(t *testing.T, m *Manager, dir string) error {
			_, err := Open(Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			m, _ := newTestManager(t, dir)
			must(t, m.CreateStore("s", KindKeystore))
			must(t, m.PutEntry("s", "a", c.Key, []*x509.Certificate{c.Cert}))
			victim := filepath.Join(t.TempDir(), "victim")
			must(t, os.WriteFile(victim, c.KeyPEM, 0o600))
			link := filepath.Join(dir, tt.file)
			os.Remove(link)
			must(t, os.Symlink(victim, link))

			err := tt.act(t, m, dir)
			if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("got %v; want an error naming %s as a symbolic link", err, link)
			}
			if got, _ := os.ReadFile(victim); !bytes.Equal(got, c.KeyPEM) {
				t.Errorf("link target changed")
			}
		})
	}
}
