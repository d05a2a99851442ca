package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/store"
)

// runConfig writes a configuration for `edgefort run` on stateDir.
func runConfig(t *testing.T, stateDir string) string {
	t.Helper()
	return writeFile(t, "edgefort.yaml", strings.NewReplacer(
		"state_dir: /var/lib/edgefort", "state_dir: "+stateDir,
		"socket: /var/lib/edgefort/admin.sock", "socket: "+filepath.Join(stateDir, "admin.sock"),
		"listen: 127.0.0.1:9273", "listen: 127.0.0.1:0",
	).Replace(string(config.Example)))
}

// populateState makes a state database in dir with an enrollment and
// enough records to span many pages, and returns its path.
func populateState(t *testing.T, dir string) string {
	t.Helper()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *store.Tx) error {
		if err := tx.Bucket("cloud").Put("enrollment", map[string]string{"device_id": "dev-1"}); err != nil {
			return err
		}
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
	return db.Path()
}

// fileState identifies a file's content, mode and modification time.
func fileState(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256 %x size %d mode %v mtime %s", sha256.Sum256(b), len(b), fi.Mode(), fi.ModTime().Format(time.RFC3339Nano))
}

// TestRunRefusesBadStateDir runs `edgefort run` as a real process on state
// directories a crash, a disk or another user has damaged, and checks that
// each ends in a clear error with a non-zero exit status, no panic, and the
// files as they were.
func TestRunRefusesBadStateDir(t *testing.T) {
	const pageSize = 4096
	tests := []struct {
		name string
		// prepare damages dir and returns the files that must stay as they
		// are and what the error must say.
		prepare func(t *testing.T, dir string) (keep []string, want string)
		root    bool // needs root
	}{
		{"empty state.db", func(t *testing.T, dir string) ([]string, string) {
			path := populateState(t, dir)
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			return []string{path}, "not a valid state database: the file is empty (0 bytes)"
		}, false},
		{"truncated state.db", func(t *testing.T, dir string) ([]string, string) {
			path := populateState(t, dir)
			if err := os.Truncate(path, 3*pageSize); err != nil {
				t.Fatal(err)
			}
			return []string{path}, "not a valid state database: it is 12288 bytes long"
		}, false},
		{"damaged pages", func(t *testing.T, dir string) ([]string, string) {
			path := populateState(t, dir)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every branch and leaf page (flags 1 or 2 after the 8-byte
			// id) claims 65535 elements.
			for off := 2 * pageSize; off+pageSize <= len(b); off += pageSize {
				if f := binary.LittleEndian.Uint16(b[off+8:]); f == 1 || f == 2 {
					binary.LittleEndian.PutUint16(b[off+10:], 0xffff)
				}
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{path}, "not a valid state database: a page could not be read"
		}, false},
		{"symlinked lock", func(t *testing.T, dir string) ([]string, string) {
			victim := writeFile(t, "victim", "precious\n")
			if err := os.Symlink(victim, filepath.Join(dir, "edgefort.lock")); err != nil {
				t.Fatal(err)
			}
			return []string{victim}, "edgefort.lock is a symbolic link; refusing to follow it"
		}, false},
		{"symlinked state.db", func(t *testing.T, dir string) ([]string, string) {
			victim := populateState(t, t.TempDir())
			if err := os.Symlink(victim, filepath.Join(dir, "state.db")); err != nil {
				t.Fatal(err)
			}
			return []string{victim}, "state.db: it is a symbolic link; refusing to follow it"
		}, false},
		{"state dir of another user", func(t *testing.T, dir string) ([]string, string) {
			path := populateState(t, dir)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return []string{path}, "is owned by uid 65534, not by this process's user (uid 0) or root"
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to give the state directory to another user")
			}
			dir := t.TempDir()
			keep, want := tt.prepare(t, dir)
			// Old times, so that a rewrite with the same bytes shows.
			old := time.Now().Add(-time.Hour)
			before := make([]string, len(keep))
			for i, p := range keep {
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
				before[i] = fileState(t, p)
			}
			cmd, stderr := startEdgefort(t, "run", "--config", runConfig(t, dir))
			err := waitExit(cmd, 20*time.Second)
			if code := exitCode(err); code != 1 {
				t.Errorf("exit = %v (code %d); want status 1; stderr:\n%s", err, code, stderr)
			}
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr)
			}
			if s := stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
				t.Errorf("the agent crashed:\n%s", s)
			}
			for i, p := range keep {
				if after := fileState(t, p); after != before[i] {
					t.Errorf("%s changed: %s -> %s", p, before[i], after)
				}
			}
		})
	}
}

// TestOfflineCommandsCreateFilesAsStateOwner runs keystore commands as
// root, with no agent running, on a state directory the agent's own user
// owns, and checks that everything they leave in it belongs to that user.
func TestOfflineCommandsCreateFilesAsStateOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act on another user's state directory")
	}
	const owner = 65534
	base := t.TempDir()
	// The owner must be able to reach the directory.
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o777); err != nil { // open to all: tightened by the owner
		t.Fatal(err)
	}
	if err := os.Chown(dir, owner, owner); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"keystore", "create", "hub-1"},
		{"truststore", "create", "trust"},
		{"ref", "set", "tls", "hub-1"},
		{"keys", "generate"},
	} {
		cmd, stderr := startEdgefort(t, append(args, "--state-dir="+dir, "--config="+filepath.Join(base, "none.yaml"))...)
		if err := waitExit(cmd, 60*time.Second); err != nil {
			t.Fatalf("%v: %v; stderr:\n%s", args, err, stderr)
		}
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != owner || st.Gid != owner {
			t.Errorf("%s belongs to %d:%d; want %d:%d", path, st.Uid, st.Gid, owner, owner)
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"state.db", "edgefort.lock", "keystores", "oidc-keys"} {
		if _, err := os.Lstat(filepath.Join(dir, want)); err != nil {
			t.Errorf("%s not made: %v (files: %v)", want, err, files)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v (%v); want it tightened to 0700", fi.Mode().Perm(), err)
	}
}
