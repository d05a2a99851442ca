package keystore

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOpenAll: the references of the section are created in a fresh state
// directory; one repointed at run time wins over the section on the next
// open; references to stores that do not exist come back together as
// field errors relative to the section; the built-in certificate is made
// only when asked for.
func TestOpenAll(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	opts := OpenOptions{Dir: filepath.Join(dir, "keystores"), PairsDir: filepath.Join(dir, "oidc-keys"), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	m, _, err := OpenAll(Config{}, opts)
	if err != nil {
		t.Fatalf("OpenAll(empty): %v", err)
	}
	for _, name := range []string{"tls-a", "tls-b"} {
		if err := m.CreateStore(name, KindKeystore); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := m.current().stores[BuiltinStore]; ok {
		t.Fatal("the built-in certificate was made without NeedBuiltin")
	}

	cfg := Config{References: map[string]string{"edge": "tls-a"}}
	m, pairs, err := OpenAll(cfg, opts)
	if err != nil || pairs == nil {
		t.Fatalf("OpenAll(%v) = %v, %v", cfg.References, pairs, err)
	}
	if diff := cmp.Diff(map[string]string{"edge": "tls-a"}, m.Refs()); diff != "" {
		t.Errorf("references (-want +got):\n%s", diff)
	}
	if err := m.SetRef("edge", "tls-b"); err != nil {
		t.Fatal(err)
	}

	opts.NeedBuiltin, opts.BuiltinHostnames = true, []string{"edge.local"}
	m, _, err = OpenAll(cfg, opts)
	if err != nil {
		t.Fatalf("OpenAll after a repoint: %v", err)
	}
	if got := m.Refs()["edge"]; got != "tls-b" {
		t.Errorf("edge points at %s after reopening; want tls-b, the run-time repoint", got)
	}
	if !strings.Contains(logs.String(), "reference was repointed at run time; keeping it") {
		t.Errorf("no log line about the kept repoint:\n%s", logs.String())
	}
	if st, ok := m.current().stores[BuiltinStore]; !ok || !covers(st.Entries[BuiltinAlias].Leaf(), []string{"edge.local"}) {
		t.Errorf("NeedBuiltin made no built-in certificate for edge.local")
	}

	bad := Config{References: map[string]string{"z": "nowhere", "a": "missing", "edge": "tls-a"}}
	_, _, err = OpenAll(bad, opts)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("OpenAll(bad) error = %v, want the field errors joined", err)
	}
	var fields []string
	for _, e := range joined.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) || !errors.Is(fe, ErrNotFound) {
			t.Fatalf("error %v is not a *FieldError for a store not found", e)
		}
		fields = append(fields, fe.Field)
	}
	if diff := cmp.Diff([]string{"references.a", "references.z"}, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}
