package devstack

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/keystore"
)

// TestPrepareStateUpgrades checks that a state directory prepared
// before the update channel or the identity JWT (no device or identity
// keystore) gets them, with the same CA.
func TestPrepareStateUpgrades(t *testing.T) {
	for _, tc := range []struct{ store, alias string }{
		{DeviceStore, DeviceAlias},
		{IdentityStore, IdentityAlias},
	} {
		t.Run(tc.store, func(t *testing.T) {
			dir := t.TempDir()
			if err := PrepareState(dir); err != nil {
				t.Fatal(err)
			}
			caCert := filepath.Join(dir, CADir, "ca.crt")
			before, err := os.ReadFile(caCert)
			if err != nil {
				t.Fatal(err)
			}
			withStores(t, dir, func(ks *keystore.Manager) {
				if err := ks.DeleteStore(tc.store); err != nil {
					t.Fatal(err)
				}
			})
			if err := PrepareState(dir); err != nil {
				t.Fatalf("second prepare: %v", err)
			}
			withStores(t, dir, func(ks *keystore.Manager) {
				st, err := ks.Resolve(tc.store, keystore.KindKeystore)
				if err != nil {
					t.Fatal(err)
				}
				e := st.Entries[tc.alias]
				if len(st.Entries) != 1 || e == nil {
					t.Fatalf("%s entries: %+v", tc.store, st.Entries)
				}
				ca, err := LoadCA(filepath.Join(dir, CADir))
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Leaf().CheckSignatureFrom(ca.Cert); err != nil {
					t.Errorf("%s certificate not issued by the dev CA: %v", tc.store, err)
				}
			})
			if after, _ := os.ReadFile(caCert); !bytes.Equal(before, after) {
				t.Error("the dev CA changed")
			}
		})
	}
}

func withStores(t *testing.T, dir string, f func(*keystore.Manager)) {
	t.Helper()
	svc, closeFn, err := agent.OpenKeystoresOffline(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	f(svc.Stores)
}

// TestSingleFileModule runs dev's own single-file module (used where
// the stock one is not installed) through the calls the agent makes.
func TestSingleFileModule(t *testing.T) {
	dir := t.TempDir()
	module := filepath.Join(dir, "single-file")
	if err := os.WriteFile(module, SingleFileModule, 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "dest", "deeper")
	newTree := func(t *testing.T, content, destDir string) string {
		t.Helper()
		tree := t.TempDir()
		files := map[string]string{"app.conf": content, "dest_dir": destDir, "filename": "app.conf", "permissions": "640"}
		for _, d := range []string{"files", "tmp"} {
			if err := os.Mkdir(filepath.Join(tree, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(tree, "files", name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return tree
	}
	call := func(t *testing.T, state, tree string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		cmd := exec.Command(module, state, tree)
		cmd.Dir, cmd.Stdout, cmd.Stderr = tree, &out, &errOut
		err := cmd.Run()
		if err != nil {
			return errOut.String(), err
		}
		return out.String(), nil
	}
	target := filepath.Join(dest, "app.conf")
	read := func() string {
		b, err := os.ReadFile(target)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}

	tree := newTree(t, "v1", dest)
	for state, want := range map[string]string{"SupportsRollback": "Yes\n", "NeedsArtifactReboot": "No\n", "ArtifactCommit": "", "Cleanup": "", "Download": ""} {
		if out, err := call(t, state, tree); err != nil || out != want {
			t.Errorf("%s: %q, %v; want %q", state, out, err, want)
		}
	}
	// A first install, then its rollback removes the file it put there.
	if out, err := call(t, "ArtifactInstall", tree); err != nil {
		t.Fatalf("install v1: %v: %s", err, out)
	}
	if fi, err := os.Stat(target); err != nil || read() != "v1" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("after install v1: %q, %v", read(), fi)
	}
	if out, err := call(t, "ArtifactRollback", tree); err != nil {
		t.Fatalf("rollback v1: %v: %s", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("rollback of a first install left %s: %v", target, err)
	}
	// Install v1 for good, then v2 over it and roll v2 back: v1 returns.
	if out, err := call(t, "ArtifactInstall", newTree(t, "v1", dest)); err != nil {
		t.Fatalf("install v1: %v: %s", err, out)
	}
	tree2 := newTree(t, "v2", dest)
	if out, err := call(t, "ArtifactInstall", tree2); err != nil || read() != "v2" {
		t.Fatalf("install v2: %v: %s; file %q", err, out, read())
	}
	if out, err := call(t, "ArtifactRollback", tree2); err != nil || read() != "v1" {
		t.Fatalf("rollback v2: %v: %s; file %q", err, out, read())
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only app.conf (no leftovers)", dest, len(entries))
	}

	// A destination under a regular file fails with a reason.
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := call(t, "ArtifactInstall", newTree(t, "v3", filepath.Join(blocker, "sub")))
	if err == nil || !strings.Contains(out, "cannot create the destination directory") {
		t.Errorf("install under a regular file: %v, stderr %q", err, out)
	}
	// A file name that climbs out of dest_dir is refused.
	bad := newTree(t, "x", dest)
	os.WriteFile(filepath.Join(bad, "files", "filename"), []byte("../escape"), 0o600)
	if out, err := call(t, "ArtifactInstall", bad); err == nil || !strings.Contains(out, "not a plain file name") {
		t.Errorf("install of ../escape: %v, stderr %q", err, out)
	}
}

// TestDefaultArtifactName: the name has the shape ArtifactNameHelp (which
// --help prints) promises, and two names in one second differ.
func TestDefaultArtifactName(t *testing.T) {
	shape := regexp.MustCompile(`^notes\.txt-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$`)
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.FixedZone("CET", 3600))
	a, b := DefaultArtifactName("/tmp/notes.txt", now), DefaultArtifactName("/tmp/notes.txt", now)
	if !shape.MatchString(a) || !strings.Contains(a, "-20260102T140405-") {
		t.Errorf("name %q: want notes.txt-<UTC time>-<6 hex digits>", a)
	}
	if a == b {
		t.Errorf("two names in one second are both %q", a)
	}
	example := ArtifactNameHelp[strings.LastIndex(ArtifactNameHelp, " ")+1:]
	if !shape.MatchString(example) {
		t.Errorf("ArtifactNameHelp's example %q does not have the shape of a name", example)
	}
}
