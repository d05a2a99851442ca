package scripts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/google/go-cmp/cmp"
)

// dirContents returns name → mode and content for the files in dir.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = fi.Mode().String() + " " + string(data)
	}
	return got
}

func TestStore(t *testing.T) {
	r := newTestRunner(t)
	first := []artifact.Script{
		{Name: "ArtifactInstall_Enter_00", Data: []byte("#!/bin/sh\necho one\n")},
		{Name: "ArtifactCommit_Leave_10_notify", Data: []byte("#!/bin/sh\necho two\n")},
	}
	second := []artifact.Script{
		{Name: "ArtifactReboot_Enter_05", Data: []byte("#!/bin/sh\necho three\n")},
	}
	if err := r.Store(first); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"version":                        "-rw-r--r-- 3",
		"ArtifactInstall_Enter_00":       "-rwxr-xr-x #!/bin/sh\necho one\n",
		"ArtifactCommit_Leave_10_notify": "-rwxr-xr-x #!/bin/sh\necho two\n",
	}
	if diff := cmp.Diff(want, dirContents(t, r.ArtifactDir)); diff != "" {
		t.Errorf("after the first Store (-want +got):\n%s", diff)
	}

	// A leftover from an interrupted Store does not get in the way.
	if err := os.MkdirAll(r.ArtifactDir+".new/junk", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.Store(second); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{
		"version":                 "-rw-r--r-- 3",
		"ArtifactReboot_Enter_05": "-rwxr-xr-x #!/bin/sh\necho three\n",
	}
	if diff := cmp.Diff(want, dirContents(t, r.ArtifactDir)); diff != "" {
		t.Errorf("after the second Store (-want +got):\n%s", diff)
	}
	entries, err := os.ReadDir(filepath.Dir(r.ArtifactDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%s holds %v, want only the scripts dir", filepath.Dir(r.ArtifactDir), entries)
	}

	// Refused names leave the stored scripts alone.
	for _, bad := range []string{"ArtifactInstall_Enter_1", "version", "../ArtifactInstall_Enter_00", "ArtifactInstall_Start_00"} {
		if err := r.Store([]artifact.Script{{Name: bad}}); err == nil {
			t.Errorf("Store(%q) succeeded", bad)
		}
	}
	if err := r.Store([]artifact.Script{second[0], second[0]}); err == nil {
		t.Error("Store of a name twice succeeded")
	}
	if diff := cmp.Diff(want, dirContents(t, r.ArtifactDir)); diff != "" {
		t.Errorf("after refused Stores (-want +got):\n%s", diff)
	}

	if err := r.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.ArtifactDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Clear: %v, want the dir gone", err)
	}
	if err := r.Clear(); err != nil {
		t.Errorf("second Clear: %v", err)
	}
}

// TestStoreEmpty: an Artifact without scripts still replaces the old ones.
func TestStoreEmpty(t *testing.T) {
	r := newTestRunner(t)
	if err := r.Store([]artifact.Script{{Name: "ArtifactInstall_Enter_00", Data: []byte("#!/bin/sh\n")}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Store(nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"version": "-rw-r--r-- 3"}
	if diff := cmp.Diff(want, dirContents(t, r.ArtifactDir)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
