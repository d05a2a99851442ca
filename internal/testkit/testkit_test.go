package testkit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/updater/artifact"
)

// fatalTB records a Fatalf instead of ending the test, so the failure
// paths can be checked.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestPoll(t *testing.T) {
	tests := []struct {
		name      string
		trueAfter int // calls of cond before it holds; -1 never
		patience  time.Duration
		want      bool
		wantCalls int // -1: at least two
	}{
		{"holds at once", 0, 0, true, 1},
		{"holds on the fourth check", 3, Patience, true, 4},
		{"never holds", -1, 5 * time.Millisecond, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got := poll(tt.patience, func() bool {
				calls++
				return tt.trueAfter >= 0 && calls > tt.trueAfter
			})
			if got != tt.want {
				t.Errorf("poll = %v, want %v", got, tt.want)
			}
			if tt.wantCalls >= 0 && calls != tt.wantCalls || tt.wantCalls < 0 && calls < 2 {
				t.Errorf("cond called %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestWaitForFailureNamesTheWait(t *testing.T) {
	f := &fatalTB{TB: t}
	WaitForWithin(f, time.Millisecond, "the moon", func() bool { return false })
	if !strings.HasPrefix(f.msg, "timed out after 1ms waiting for the moon\n") || !strings.Contains(f.msg, "goroutine ") {
		t.Errorf("failure message = %.200q, want the wait named and the stacks", f.msg)
	}
	f = &fatalTB{TB: t}
	WaitFor(f, "the sun", func() bool { return true })
	if f.msg != "" {
		t.Errorf("WaitFor on a true condition failed: %s", f.msg)
	}
}

func TestOpenStore(t *testing.T) {
	dir := t.TempDir()
	db := OpenStore(t, dir)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The same dir opens again, as after a restart; the cleanup of the
	// first, already closed, does no harm.
	OpenStore(t, dir)
	if OpenStore(t, "") == nil {
		t.Fatal("OpenStore on a fresh temp dir returned nil")
	}

	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fatalTB{TB: t}
	OpenStore(f, file)
	if !strings.Contains(f.msg, "open the state store in "+file) {
		t.Errorf("failure message = %q, want it to name %s", f.msg, file)
	}
}

// recorder is an artifact.Installer that keeps every file.
type recorder struct{ files map[string]string }

func (r *recorder) Store(f *artifact.File, rd io.Reader) error {
	b, err := io.ReadAll(rd)
	r.files[f.Type+":"+f.Name] = string(b)
	return err
}
func (r *recorder) Verified(*artifact.File) error { return nil }

func TestArtifactBytes(t *testing.T) {
	tests := []struct {
		name      string
		a         Artifact
		wantFiles map[string]string
		wantGroup string
	}{
		{
			name: "single file",
			a:    SingleFile("app-2", "edge-1", "/opt/app", "app.conf", []byte("v2\n")),
			wantFiles: map[string]string{
				"single-file:app.conf": "v2\n", "single-file:dest_dir": "/opt/app",
				"single-file:filename": "app.conf", "single-file:permissions": "0644",
			},
		},
		{
			name: "own module, uncompressed, edited",
			a: Artifact{Name: "blob-1", DeviceType: "edge-1", Module: "blob", Files: []File{{"blob", []byte{1, 2, 3}}},
				Compression: artifact.None, Edit: func(s *artifact.Spec) { s.Group = "canary" }},
			wantFiles: map[string]string{"blob:blob": "\x01\x02\x03"},
			wantGroup: "canary",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{files: map[string]string{}}
			h, err := artifact.Read(bytes.NewReader(tt.a.Bytes(t)), artifact.Options{}, nil, rec)
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != tt.a.Name || h.Group != tt.wantGroup || !cmp.Equal(h.Depends.DeviceTypes, []string{tt.a.DeviceType}) {
				t.Errorf("header name %q group %q device types %v; want %q %q [%s]",
					h.Name, h.Group, h.Depends.DeviceTypes, tt.a.Name, tt.wantGroup, tt.a.DeviceType)
			}
			if v := h.Payloads[0].Provides["rootfs-image."+tt.a.Module+".version"]; v != tt.a.Name {
				t.Errorf("provides version %q, want %q", v, tt.a.Name)
			}
			if diff := cmp.Diff(tt.wantFiles, rec.files); diff != "" {
				t.Errorf("payload files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestArtifactWriteErrorFails(t *testing.T) {
	f := &fatalTB{TB: t}
	Artifact{Name: "", DeviceType: "edge-1", Module: "blob"}.Bytes(f)
	if !strings.HasPrefix(f.msg, `write artifact "": `) {
		t.Errorf("failure message = %q, want it to name the artifact", f.msg)
	}
}

// TestSyncBuffer: writes from many goroutines while the test reads all
// land, whole (under -race, a buffer without its lock fails here).
func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "line\n")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != 800 {
		t.Errorf("buffer holds %d lines, want 800", got)
	}
}
