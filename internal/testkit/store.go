package testkit

import (
	"testing"

	"github.com/edgefort/edgefort/internal/store"
)

// OpenStore opens the state store in dir with default options and closes
// it when the test ends. An empty dir means a fresh t.TempDir(); pass the
// same dir again to reopen a store, as after a restart.
func OpenStore(t testing.TB, dir string) *store.DB {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("open the state store in %s: %v", dir, err)
		return nil // only for a TB whose Fatalf returns
	}
	t.Cleanup(func() { db.Close() })
	return db
}
