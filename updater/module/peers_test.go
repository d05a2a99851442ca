package module

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/peertest"
)

// stockModules is where Debian's mender-client installs its modules.
const stockModules = "/usr/share/mender/modules/v3"

// TestPeerSingleFile drives the stock single-file module through an
// install with commit, and an install with rollback.
func TestPeerSingleFile(t *testing.T) {
	peertest.Require(t, filepath.Join(stockModules, "single-file"))
	tests := []struct {
		name     string
		old      string // dest file content before the update; "" = none
		rollback bool
		want     string // dest file content afterwards
	}{
		{name: "install and commit", old: "old\n", want: "new content\n"},
		{name: "install over nothing", want: "new content\n"},
		{name: "install and roll back", old: "old\n", rollback: true, want: "old\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Runner{Dir: stockModules, Timeout: time.Minute, Logger: newTestRunner(t).Logger}
			inst := lookup(t, r, "single-file")
			p := newTree(t, "single-file")
			destDir := filepath.Join(t.TempDir(), "etc", "app")
			dest := filepath.Join(destDir, "app.conf")
			if tt.old != "" {
				if err := os.MkdirAll(destDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dest, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			ctx := t.Context()
			d, err := inst.Download(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Abort()
			for _, f := range []testFile{
				{name: "app.conf", data: []byte("new content\n")},
				{name: "dest_dir", data: []byte(destDir)},
				{name: "filename", data: []byte("app.conf")},
				{name: "permissions", data: []byte("640")},
			} {
				if err := d.Store(f.artifactFile(), f.reader()); err != nil {
					t.Fatalf("Store(%s): %v", f.name, err)
				}
			}
			if err := d.Finish(ctx); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			answer, err := inst.Query(ctx, p, QuerySupportsRollback)
			if rb, perr := ParseSupportsRollback(answer); err != nil || perr != nil || !rb {
				t.Fatalf("SupportsRollback = %q, %v, %v; want Yes", answer, err, perr)
			}
			if err := inst.Call(ctx, p, StateArtifactInstall); err != nil {
				t.Fatal(err)
			}
			answer, err = inst.Query(ctx, p, QueryNeedsArtifactReboot)
			if reboot, perr := ParseNeedsReboot(answer); err != nil || perr != nil || reboot != RebootNo {
				t.Fatalf("NeedsArtifactReboot = %q, %v, %v; want No", answer, err, perr)
			}
			if got, _ := os.ReadFile(dest); string(got) != "new content\n" {
				t.Fatalf("after ArtifactInstall %s = %q", dest, got)
			}
			states := []string{StateArtifactCommit, StateCleanup}
			if tt.rollback {
				states = []string{StateArtifactRollback, StateArtifactFailure, StateCleanup}
			}
			for _, state := range states {
				if err := inst.Call(ctx, p, state); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(dest)
			if err != nil || string(got) != tt.want {
				t.Errorf("%s = %q, %v; want %q", dest, got, err, tt.want)
			}
			if fi, err := os.Stat(dest); err == nil && !tt.rollback && fi.Mode().Perm() != 0o640 {
				t.Errorf("%s mode %v, want 0640", dest, fi.Mode().Perm())
			}
		})
	}
}
