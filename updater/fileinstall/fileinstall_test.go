package fileinstall_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/fileinstall"
	"github.com/edgefort/edgefort/updater/module"
)

// payload prepares a payload tree whose meta-data is meta.
func payload(t *testing.T, meta string) module.Payload {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	h := &artifact.Header{Name: "f-2", Payloads: []artifact.Payload{{Index: 0, Type: fileinstall.Type, MetaData: json.RawMessage(meta)}},
		HeaderInfo: json.RawMessage(`{}`)}
	if err := module.PrepareTree(tree, module.TreeInfo{CurrentArtifactName: "f-1", DeviceType: "d", Header: h}); err != nil {
		t.Fatal(err)
	}
	return module.Payload{Index: 0, Type: fileinstall.Type, Tree: tree}
}

func file(name, content string) (*artifact.File, io.Reader) {
	return &artifact.File{Name: name, Path: "data/0000/" + name, Size: int64(len(content)), Checksum: sha256.Sum256([]byte(content))},
		strings.NewReader(content)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func download(t *testing.T, in *fileinstall.Installer, p module.Payload, content string) {
	t.Helper()
	d, err := in.Download(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Abort()
	f, r := file("model.bin", content)
	if err := d.Store(f, r); err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func call(t *testing.T, in *fileinstall.Installer, p module.Payload, states ...string) {
	t.Helper()
	for _, st := range states {
		if err := in.Call(context.Background(), p, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
}

func TestInstallCommitRollback(t *testing.T) {
	in := &fileinstall.Installer{}
	for _, tc := range []struct {
		name     string
		existing bool
		states   []string
		want     string // content afterwards; "" = no file
	}{
		{"commit over an old file", true, []string{"ArtifactInstall", "ArtifactCommit", "Cleanup"}, "v2"},
		{"commit where there was none", false, []string{"ArtifactInstall", "ArtifactCommit", "Cleanup"}, "v2"},
		{"rollback restores the old file", true, []string{"ArtifactInstall", "ArtifactRollback", "Cleanup"}, "v1"},
		{"rollback removes a file that was not there", false, []string{"ArtifactInstall", "ArtifactRollback", "Cleanup"}, ""},
		{"rollback before install changes nothing", true, []string{"ArtifactRollback", "Cleanup"}, "v1"},
		{"install re-run after a crash", true, []string{"ArtifactInstall", "ArtifactInstall", "ArtifactCommit"}, "v2"},
		{"rollback re-run after a crash", true, []string{"ArtifactInstall", "ArtifactRollback", "ArtifactRollback"}, "v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "sub", "model.bin")
			p := payload(t, fmt.Sprintf(`{"path": %q, "mode": "0640"}`, dest))
			if tc.existing {
				os.MkdirAll(filepath.Dir(dest), 0o755)
				if err := os.WriteFile(dest, []byte("v1"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			download(t, in, p, "v2")
			if tc.existing && read(t, dest) != "v1" {
				t.Fatal("the download changed the destination before ArtifactInstall")
			}
			call(t, in, p, tc.states...)
			got, err := os.ReadFile(dest)
			switch {
			case tc.want == "" && !errors.Is(err, os.ErrNotExist):
				t.Errorf("destination exists (%q, %v), want none", got, err)
			case tc.want != "" && string(got) != tc.want:
				t.Errorf("destination = %q (%v), want %q", got, err, tc.want)
			}
			if tc.want == "v2" {
				if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o640 {
					t.Errorf("mode %v, want 0640", fi.Mode().Perm())
				}
			}
			entries, _ := os.ReadDir(filepath.Dir(dest))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") && tc.states[len(tc.states)-1] != "ArtifactInstall" {
					t.Errorf("leftover %s", e.Name())
				}
			}
		})
	}
}

func TestDownloadErrors(t *testing.T) {
	in := &fileinstall.Installer{}
	dest := filepath.Join(t.TempDir(), "model.bin")
	for _, tc := range []struct{ meta, want string }{
		{`{}`, `"path" must be a clean absolute file path`},
		{`{"path": "relative/x"}`, "clean absolute"},
		{`{"path": "/a/../b"}`, "clean absolute"},
		{fmt.Sprintf(`{"path": %q, "mode": "rw-r--r--"}`, dest), "not an octal file mode"},
		{`[1,2]`, "meta-data"},
	} {
		if _, err := in.Download(context.Background(), payload(t, tc.meta)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("meta-data %s: %v, want %q", tc.meta, err, tc.want)
		}
	}

	p := payload(t, fmt.Sprintf(`{"path": %q}`, dest))
	d, err := in.Download(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	bad := io.MultiReader(strings.NewReader("half"), errReader{fmt.Errorf("%w: data/0000/model.bin", artifact.ErrChecksum)})
	if err := d.Store(&artifact.File{Name: "model.bin"}, bad); !errors.Is(err, artifact.ErrChecksum) {
		t.Errorf("Store = %v, want the checksum error", err)
	}
	if err := d.Finish(context.Background()); err == nil {
		t.Error("Finish succeeded after a failed Store")
	}
	d.Abort()
	if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}

	d, _ = in.Download(context.Background(), p)
	f1, r1 := file("a", "x")
	f2, r2 := file("b", "y")
	if err := d.Store(f1, r1); err != nil {
		t.Fatal(err)
	}
	if err := d.Store(f2, r2); err == nil || !strings.Contains(err.Error(), "more than one file") {
		t.Errorf("second file: %v", err)
	}
	d.Abort()
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
