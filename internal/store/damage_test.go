package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The page header bbolt writes at the start of every page: id (8 bytes),
// flags (2), count (2), overflow (4).
const (
	pageSize       = 4096 // what bbolt picks on the systems we test on
	pageFlagsOff   = 8
	pageCountOff   = 10
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
)

// populate makes a state database in dir that spans many pages: an
// enrollment bucket and a bucket with enough records for a branch page.
// It returns the file and the size its pages take, which can be less than
// the file's (bbolt grows the file ahead of use).
func populate(t *testing.T, dir string) (path string, used int) {
	t.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Bucket("enroll").Put("enrollment", map[string]string{"device_id": "dev-1"}); err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *Tx) error {
		for i := range 400 {
			if err := tx.Bucket("outbox").Put(fmt.Sprintf("k%04d", i), strings.Repeat("x", 200)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		used = int(tx.Size())
		return nil
	})
	return db.Path(), used
}

// damagePages sets the element count of every branch and leaf page to its
// maximum, as a torn or bit-flipped page header would: reading one indexes
// past the page.
func damagePages(t *testing.T, b []byte) []byte {
	n := 0
	for off := 2 * pageSize; off+pageSize <= len(b); off += pageSize {
		if flags := binary.LittleEndian.Uint16(b[off+pageFlagsOff:]); flags == branchPageFlag || flags == leafPageFlag {
			binary.LittleEndian.PutUint16(b[off+pageCountOff:], 0xffff)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no branch or leaf page found to damage")
	}
	return b
}

// damagePageIDs writes a wrong id into every branch and leaf page header,
// which bbolt asserts on.
func damagePageIDs(t *testing.T, b []byte) []byte {
	n := 0
	for off := 2 * pageSize; off+pageSize <= len(b); off += pageSize {
		if flags := binary.LittleEndian.Uint16(b[off+pageFlagsOff:]); flags == branchPageFlag || flags == leafPageFlag {
			binary.LittleEndian.PutUint64(b[off:], 7777)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no branch or leaf page found to damage")
	}
	return b
}

// damageBucketName changes one byte of the name of the enroll bucket (not
// of the record of it in the store's own bucket), keeping the key order.
// Every copy is changed: earlier copies of the page holding it stay in the
// file as free pages.
func damageBucketName(t *testing.T, b []byte) []byte {
	n := 0
	for i := 0; ; i++ {
		j := bytes.Index(b[i:], []byte("enroll"))
		if j < 0 {
			break
		}
		i += j
		if !bytes.HasSuffix(b[:i], []byte(bucketKeyPrefix)) {
			b[i+5] = 'm' // "enrolm"
			n++
		}
	}
	if n == 0 {
		t.Fatal("bucket name not found in the file")
	}
	return b
}

// TestOpenDamaged: each shape of damaged state database is refused with
// ErrInvalidDatabase and an error that names the file and what to do,
// leaves the file exactly as it was, and releases the lock.
func TestOpenDamaged(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, b []byte, used int) []byte
		want   string
	}{
		{"empty file", func(*testing.T, []byte, int) []byte { return nil }, "empty (0 bytes)"},
		{"truncated to half", func(_ *testing.T, b []byte, used int) []byte { return b[:used/2/pageSize*pageSize] }, "truncated"},
		{"truncated mid-page", func(_ *testing.T, b []byte, used int) []byte { return b[:used-pageSize-100] }, "truncated"},
		{"truncated to one page", func(_ *testing.T, b []byte, _ int) []byte { return b[:pageSize] }, ""},
		{"damaged page counts", ignoreUsed(damagePages), ""},
		{"damaged page ids", ignoreUsed(damagePageIDs), ""},
		{"damaged bucket name", ignoreUsed(damageBucketName), `bucket "enroll" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path, used := populate(t, dir)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b = tt.damage(t, b, used)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			before := fingerprint(t, path)
			// Twice: a refused Open must release the lock.
			for i := range 2 {
				db, err := Open(dir, Options{})
				if err == nil {
					db.Close()
					t.Fatalf("Open #%d of a damaged database succeeded", i+1)
				}
				checkInvalid(t, err, path, tt.want)
			}
			if after := fingerprint(t, path); after != before {
				t.Errorf("damaged file changed: %s -> %s", before, after)
			}
		})
	}
}

func ignoreUsed(f func(*testing.T, []byte) []byte) func(*testing.T, []byte, int) []byte {
	return func(t *testing.T, b []byte, _ int) []byte { return f(t, b) }
}

// checkInvalid checks that err is the clear "not a valid state database"
// error for path.
func checkInvalid(t *testing.T, err error, path, want string) {
	t.Helper()
	msg := err.Error()
	t.Logf("Open: %v", err)
	if !errors.Is(err, ErrInvalidDatabase) || !strings.Contains(msg, "store: open "+path+": not a valid state database") ||
		!strings.Contains(msg, "restore it from a backup, or move it aside") || !strings.Contains(msg, want) {
		t.Errorf("Open = %v; want ErrInvalidDatabase naming %s, containing %q and what to do", err, path, want)
	}
}

// fingerprint identifies a file's content and modification time.
func fingerprint(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256 %x size %d mtime %s", sha256.Sum256(b), len(b), fi.ModTime().Format(time.RFC3339Nano))
}

// TestOpenCreatesUnderTemporaryName: a new database appears as state.db
// only once initialised, and one left half-made under the temporary name
// by a crash is replaced, never used.
func TestOpenCreatesUnderTemporaryName(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, newName)
	if err := os.WriteFile(leftover, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := db.Bucket("b").Put("k", 1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Lstat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after Open (%v)", leftover, err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if v, found, err := Get[int](db.Bucket("b"), "k"); err != nil || !found || v != 1 {
		t.Errorf("after reopen: %v, %v, %v; want 1, true, nil", v, found, err)
	}
}

// TestOpenAdoptsEarlierDatabase: a database made before buckets were
// recorded opens, keeps its data, and is protected from then on.
func TestOpenAdoptsEarlierDatabase(t *testing.T) {
	dir := t.TempDir()
	path, _ := populate(t, dir)
	// Remove the record, as a database from an earlier edgefort lacks it.
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(metaBucket)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open of an earlier database: %v", err)
	}
	e, found, err := Get[map[string]string](db.Bucket("enroll"), "enrollment")
	db.Close()
	if err != nil || !found || e["device_id"] != "dev-1" {
		t.Fatalf("enrollment after adoption: %v, %v, %v", e, found, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, damageBucketName(t, b), 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(dir, Options{}); err == nil {
		db.Close()
		t.Fatal("Open after a bucket name was damaged succeeded")
	} else {
		checkInvalid(t, err, path, `bucket "enroll" is missing`)
	}
}
