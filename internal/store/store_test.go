package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type deployment struct {
	ID    string   `json:"id"`
	State string   `json:"state"`
	Tries int      `json:"tries"`
	Files []string `json:"files,omitempty"`
}

// newTestDB opens a store in a fresh directory and closes it at cleanup.
func newTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestBucketRoundTrip(t *testing.T) {
	db := newTestDB(t)
	b := db.Bucket("updater")

	want := deployment{ID: "d-1", State: "installing", Tries: 2, Files: []string{"rootfs"}}
	if err := b.Put("current", want); err != nil {
		t.Fatalf("Put: %v", err)
	}
	var got deployment
	found, err := b.Get("current", &got)
	if err != nil || !found {
		t.Fatalf("Get(current) = found %v, err %v; want found", found, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get(current) mismatch (-want +got):\n%s", diff)
	}

	typed, found, err := Get[deployment](b, "current")
	if err != nil || !found {
		t.Fatalf("Get[deployment] = found %v, err %v; want found", found, err)
	}
	if diff := cmp.Diff(want, typed); diff != "" {
		t.Errorf("Get[deployment] mismatch (-want +got):\n%s", diff)
	}

	if err := b.Delete("current"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, found, err := Get[deployment](b, "current"); err != nil || found {
		t.Errorf("Get after Delete = found %v, err %v; want not found", found, err)
	}
	if err := b.Delete("current"); err != nil {
		t.Errorf("Delete of absent key: %v", err)
	}
}

func TestBucketMissing(t *testing.T) {
	db := newTestDB(t)
	tests := []struct {
		name   string
		bucket string
		key    string
	}{
		{"missing bucket", "never-written", "k"},
		{"missing key", "outbox", "absent"},
	}
	if err := db.Bucket("outbox").Put("present", 1); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := db.Bucket(tt.bucket)
			v := "untouched"
			found, err := b.Get(tt.key, &v)
			if err != nil || found || v != "untouched" {
				t.Errorf("Get = found %v, err %v, v %q; want not found, v untouched", found, err, v)
			}
			if err := b.Delete(tt.key); err != nil {
				t.Errorf("Delete: %v", err)
			}
		})
	}
	keys, err := db.Bucket("never-written").Keys()
	if err != nil || len(keys) != 0 {
		t.Errorf("Keys of missing bucket = %q, %v; want none", keys, err)
	}
}

func TestKeysAndForEach(t *testing.T) {
	db := newTestDB(t)
	b := db.Bucket("sessions")
	in := map[string]int{"b": 2, "a": 1, "c/1": 3, "B": 0, "a0": 4}
	for k, v := range in {
		if err := b.Put(k, v); err != nil {
			t.Fatalf("Put(%s): %v", k, err)
		}
	}
	// Another bucket's keys must not leak in.
	if err := db.Bucket("other").Put("zz", 9); err != nil {
		t.Fatal(err)
	}

	wantKeys := []string{"B", "a", "a0", "b", "c/1"}
	keys, err := b.Keys()
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("Keys mismatch (-want +got):\n%s", diff)
	}

	var seen []string
	got := map[string]int{}
	err = b.ForEach(func(key string, raw json.RawMessage) error {
		seen = append(seen, key)
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return err
		}
		got[key] = n
		// ForEach runs outside the transaction, so writing is allowed.
		return db.Bucket("other").Put("seen-"+key, n)
	})
	if err != nil {
		t.Fatalf("ForEach: %v", err)
	}
	if diff := cmp.Diff(wantKeys, seen); diff != "" {
		t.Errorf("ForEach order mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("ForEach values mismatch (-want +got):\n%s", diff)
	}

	stop := errors.New("stop")
	calls := 0
	err = b.ForEach(func(string, json.RawMessage) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ForEach with failing fn = %v after %d calls; want stop after 1", err, calls)
	}
}

func TestBucketErrors(t *testing.T) {
	db := newTestDB(t)
	if err := db.Bucket("b").Put("ok", "x"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
		want string
	}{
		{"put unencodable", func() error { return db.Bucket("b").Put("k", make(chan int)) }, "store: put b/k:"},
		{"put empty key", func() error { return db.Bucket("b").Put("", 1) }, "store: put b/:"},
		{"put empty bucket", func() error { return db.Bucket("").Put("k", 1) }, "bucket name is empty"},
		{"get empty bucket", func() error { _, err := db.Bucket("").Get("k", new(int)); return err }, "bucket name is empty"},
		{"keys empty bucket", func() error { _, err := db.Bucket("").Keys(); return err }, "bucket name is empty"},
		{"get wrong type", func() error { _, _, err := Get[int](db.Bucket("b"), "ok"); return err }, "store: get b/ok:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestUpdateAtomic(t *testing.T) {
	db := newTestDB(t)
	boom := errors.New("boom")

	err := db.Update(func(tx *Tx) error {
		if err := tx.Bucket("updater").Put("state", "installing"); err != nil {
			return err
		}
		if err := tx.Bucket("outbox").Put("r1", "report"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v; want boom", err)
	}
	for _, name := range []string{"updater", "outbox"} {
		if keys, err := db.Bucket(name).Keys(); err != nil || len(keys) != 0 {
			t.Errorf("after rolled-back Update, %s keys = %q, %v; want none", name, keys, err)
		}
	}

	err = db.Update(func(tx *Tx) error {
		if err := tx.Bucket("updater").Put("state", "installing"); err != nil {
			return err
		}
		return tx.Bucket("outbox").Put("r1", "report")
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	err = db.View(func(tx *Tx) error {
		var state, report string
		if found, err := tx.Bucket("updater").Get("state", &state); err != nil || !found {
			t.Errorf("updater/state: found %v, err %v", found, err)
		}
		if found, err := tx.Bucket("outbox").Get("r1", &report); err != nil || !found {
			t.Errorf("outbox/r1: found %v, err %v", found, err)
		}
		if state != "installing" || report != "report" {
			t.Errorf("got state %q report %q; want installing, report", state, report)
		}
		keys, err := tx.Bucket("outbox").Keys()
		if diff := cmp.Diff([]string{"r1"}, keys); err != nil || diff != "" {
			t.Errorf("tx Keys = %q, %v; want [r1]", keys, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
}

func TestViewRejectsWrites(t *testing.T) {
	db := newTestDB(t)
	if err := db.Bucket("b").Put("k", 1); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func(*TxBucket) error
	}{
		{"put existing bucket", func(b *TxBucket) error { return b.Put("k2", 2) }},
		{"delete", func(b *TxBucket) error { return b.Delete("k") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opErr error
			if err := db.View(func(tx *Tx) error { opErr = tt.op(tx.Bucket("b")); return nil }); err != nil {
				t.Fatalf("View: %v", err)
			}
			if opErr == nil {
				t.Errorf("write in View succeeded; want an error")
			}
		})
	}
	err := db.View(func(tx *Tx) error { return tx.Bucket("new").Put("k", 1) })
	if err == nil {
		t.Errorf("Put creating a bucket in View succeeded; want an error")
	}
	if n, _, _ := Get[int](db.Bucket("b"), "k"); n != 1 {
		t.Errorf("b/k = %d after rejected writes; want 1", n)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := deployment{ID: "d-2", State: "rebooting"}
	if err := db.Bucket("updater").Put("current", want); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	db = openT(t, dir)
	got, found, err := Get[deployment](db.Bucket("updater"), "current")
	if err != nil || !found {
		t.Fatalf("Get after reopen = found %v, err %v", found, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	if want := filepath.Join(dir, "state.db"); db.Path() != want {
		t.Errorf("Path() = %q; want %q", db.Path(), want)
	}
}

// openT opens dir and closes the store at cleanup.
func openT(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSameProcessLocked(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	// Twice: a failed Open closing its own descriptor must not release
	// the lock the first one holds.
	for i := range 2 {
		_, err = Open(dir, Options{})
		if !errors.Is(err, ErrLocked) {
			first.Close()
			t.Fatalf("Open #%d while open = %v; want ErrLocked", i+2, err)
		}
		for _, want := range []string{dir, "pid " + strconv.Itoa(os.Getpid()) + ",", filepath.Join(dir, "edgefort.lock")} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	openT(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "edgefort.lock")); err != nil {
		t.Errorf("lock file after Close: %v; want it kept", err)
	}
}

func TestOpenModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	db := openT(t, dir)
	tests := []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700},
		{db.Path(), 0o600},
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tt.want {
			t.Errorf("%s mode = %v; want %v", tt.path, got, tt.want)
		}
	}
}

func TestOpenCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"short garbage", []byte("this is not a bbolt database\n")},
		{"page-sized garbage", bytes.Repeat([]byte("garbage!"), 4096)},
		{"json", []byte(`{"updater":{"current":"x"}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state.db")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			// Twice: a failed Open must release the lock.
			for i := range 2 {
				db, err := Open(dir, Options{})
				if err == nil {
					db.Close()
					t.Fatalf("Open #%d of corrupt file succeeded", i+1)
				}
				if errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
					t.Errorf("Open #%d = %v; want an error naming %s", i+1, err, path)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, tt.content) {
				t.Errorf("corrupt file changed or removed (err %v)", err)
			}
		})
	}
}

func TestOpenNotDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open(file) = %v; want an error naming it", err)
	}
}

// TestOpenWaitsForTransientHolder: a lock held only a moment longer (a
// killed agent's child between fork and exec still holds a copy of the
// descriptor) does not make the next Open fail; a holder that stays does.
func TestOpenWaitsForTransientHolder(t *testing.T) {
	dir := t.TempDir()
	holder, err := os.OpenFile(filepath.Join(dir, "edgefort.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	busy := 0
	lockBusyHook = func() {
		busy++
		if busy == 3 {
			holder.Close() // the child's exec closes its copy
		}
	}
	t.Cleanup(func() { lockBusyHook = nil })
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the holder let go = %v; want it to wait for the lock", err)
	}
	db.Close()
	if busy != 3 {
		t.Errorf("the lock was found held %d times, want 3", busy)
	}
}
