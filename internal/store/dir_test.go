//go:build unix

package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the uid that owns a directory in the "another user" cases.
const nobody = 65534

// TestOpenDirOwnerAndMode: a state directory open to group or others is
// made private with a warning when this process's user owns it, and
// refused, untouched, when another user does.
func TestOpenDirOwnerAndMode(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode
		owner   int // -1: this process's user
		want    os.FileMode
		warn    bool
		wantErr string
	}{
		{"private", 0o700, -1, 0o700, false, ""},
		{"group readable", 0o750, -1, 0o700, true, ""},
		{"group writable", 0o770, -1, 0o700, true, ""},
		{"world writable", 0o757, -1, 0o700, true, ""},
		{"world writable sticky", 0o1777, -1, 0o700, true, ""},
		{"another user, private", 0o700, nobody, 0o700, false, "owned by uid 65534"},
		{"another user, world writable", 0o777, nobody, 0o777, false, "owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.owner >= 0 && os.Geteuid() != 0 {
				t.Skip("needs root to give the directory to another user")
			}
			dir := t.TempDir()
			if tt.owner >= 0 {
				if err := os.Chown(dir, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			db, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err == nil {
				db.Close()
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Open: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), dir)) {
				t.Fatalf("Open = %v; want an error naming %s and containing %q", err, dir, tt.wantErr)
			}
			if got := strings.Contains(logs.String(), "open to group or others"); got != tt.warn {
				t.Errorf("warned = %v; want %v; logs: %s", got, tt.warn, logs.String())
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != tt.want {
				t.Errorf("dir mode = %v; want %v", got, tt.want)
			}
			if tt.wantErr != "" {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("refused directory has new entries: %v", entries)
				}
			}
		})
	}
}

// TestOpenRefusesSymlinks: a symbolic link in place of the lock or the
// database is refused, and the file it points to is neither created nor
// changed. A link left in place of the temporary new database is removed,
// not followed.
func TestOpenRefusesSymlinks(t *testing.T) {
	tests := []struct {
		name     string
		link     string
		dangling bool   // the target does not exist
		wantErr  string // "" for an Open that succeeds
	}{
		{"lock", lockName, false, "symbolic link"},
		{"lock, dangling", lockName, true, "symbolic link"},
		{"database", dbName, false, "symbolic link"},
		{"database, dangling", dbName, true, "symbolic link"},
		{"new database", newName, false, ""},
		{"new database, dangling", newName, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			content := []byte("precious content\n")
			var before os.FileInfo
			if !tt.dangling {
				if err := os.WriteFile(victim, content, 0o644); err != nil {
					t.Fatal(err)
				}
				old := time.Now().Add(-time.Hour)
				if err := os.Chtimes(victim, old, old); err != nil {
					t.Fatal(err)
				}
				before, _ = os.Stat(victim)
			}
			link := filepath.Join(dir, tt.link)
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir, Options{})
			if err == nil {
				db.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Open: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), link)):
				t.Errorf("Open = %v; want an error naming %s and containing %q", err, link, tt.wantErr)
			}
			after, err := os.Stat(victim)
			if tt.dangling {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("link target created (stat: %v)", err)
				}
				return
			}
			got, rerr := os.ReadFile(victim)
			if err != nil || rerr != nil || !bytes.Equal(got, content) || !after.ModTime().Equal(before.ModTime()) || after.Mode() != before.Mode() {
				t.Errorf("link target changed: content %q (err %v), mtime %v -> %v, mode %v -> %v",
					got, rerr, before.ModTime(), after.ModTime(), before.Mode(), after.Mode())
			}
		})
	}
}

// TestOpenRefusesSpecialFiles: a FIFO in place of the lock or the database
// is refused, not opened (which would block) or used.
func TestOpenRefusesSpecialFiles(t *testing.T) {
	for _, name := range []string{lockName, dbName} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
				t.Fatal(err)
			}
			if db, err := Open(dir, Options{}); err == nil {
				db.Close()
				t.Fatal("Open succeeded on a FIFO")
			} else if !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Open = %v; want it to say the file is not a regular file", err)
			}
		})
	}
}
