package module

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/artifact"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestDownload(t *testing.T) {
	files := []testFile{
		{name: "a.txt", data: []byte("hello\n")},
		{name: "big.bin", data: randomBytes(streamPipeSize + 300<<10)}, // more than the pipe holds
		{name: "empty", data: nil},
	}
	tests := []struct {
		name    string
		typ     string
		files   []testFile
		wantDir string // where the files end up: tmp (the module copied the streams) or files
	}{
		{"streaming module", "streamer", files, "tmp"},
		{"streaming module, no files", "streamer", nil, "tmp"},
		{"module ignores streams", "ignorer", files, "files"},
		{"module ignores streams, no files", "ignorer", nil, "files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			r := newTestRunner(t)
			inst := lookup(t, r, tt.typ)
			p := newTree(t, tt.typ)
			d, err := inst.Download(t.Context(), p)
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			defer d.Abort()
			for _, f := range tt.files {
				if err := d.Store(f.artifactFile(), f.reader()); err != nil {
					t.Fatalf("Store(%s): %v", f.name, err)
				}
			}
			if err := d.Finish(t.Context()); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			for _, f := range tt.files {
				got, err := os.ReadFile(filepath.Join(p.Tree, tt.wantDir, f.name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, f.data) {
					t.Errorf("%s/%s: %d bytes, want the %d stored", tt.wantDir, f.name, len(got), len(f.data))
				}
			}
			for _, gone := range []string{"stream-next", "streams"} {
				if _, err := os.Lstat(filepath.Join(p.Tree, gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after Download: %v, want it removed", gone, err)
				}
			}
			if tt.wantDir == "tmp" {
				if _, err := os.Lstat(filepath.Join(p.Tree, "files")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("files/ exists after a streaming Download")
				}
			}
			if len(tt.files) > 0 {
				if err := inst.Call(t.Context(), p, StateArtifactInstall); err != nil {
					t.Errorf("ArtifactInstall: %v", err)
				}
			}
			d.Abort() // after Finish: no effect
			d.Abort()
			checkGoroutines(t, before)
		})
	}
}

// TestDownloadAugmentedFiles: the files of an augmented Artifact that only
// manifest-augment lists (not signed) reach the module apart from the
// signed ones, as Mender's protocol has it: streams-augment/ and
// files-augment/.
func TestDownloadAugmentedFiles(t *testing.T) {
	files := []testFile{
		{name: "signed.bin", data: []byte("signed\n")},
		{name: "extra.bin", data: randomBytes(100 << 10), augmented: true},
	}
	tests := []struct {
		typ  string
		want map[string]string // file -> where it must be, relative to the tree
	}{
		{"pathstreamer", map[string]string{"signed.bin": "tmp/streams/signed.bin", "extra.bin": "tmp/streams-augment/extra.bin"}},
		{"ignorer", map[string]string{"signed.bin": "files/signed.bin", "extra.bin": "files-augment/extra.bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			inst := lookup(t, newTestRunner(t), tt.typ)
			p := newTree(t, tt.typ)
			d, err := inst.Download(t.Context(), p)
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			defer d.Abort()
			for _, f := range files {
				if err := d.Store(f.artifactFile(), f.reader()); err != nil {
					t.Fatalf("Store(%s): %v", f.name, err)
				}
			}
			if err := d.Finish(t.Context()); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			for _, f := range files {
				got, err := os.ReadFile(filepath.Join(p.Tree, tt.want[f.name]))
				if err != nil || !bytes.Equal(got, f.data) {
					t.Errorf("%s: %d bytes, %v; want the %d stored", tt.want[f.name], len(got), err, len(f.data))
				}
			}
			for _, gone := range []string{"stream-next", "streams", "streams-augment"} {
				if _, err := os.Lstat(filepath.Join(p.Tree, gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after Download: %v, want it removed", gone, err)
				}
			}
		})
	}
}

func TestDownloadFailures(t *testing.T) {
	// More than the stream's pipe holds (streamPipeSize): writing it
	// blocks until the module reads.
	huge := testFile{name: "huge.bin", data: randomBytes(3 * streamPipeSize)}
	good := testFile{name: "a.txt", data: []byte("hello\n")}
	badSmall := testFile{name: "a.txt", data: []byte("hello\n"), bad: true}
	badBig := testFile{name: "big.bin", data: randomBytes(200 << 10), bad: true}
	tests := []struct {
		name     string
		typ      string
		timeout  time.Duration
		files    []testFile
		wantIs   []error  // errors.Is targets of the failing Store
		wantText []string // substrings of its message
		gone     string   // file in the tree that must not exist afterwards
		childPID bool     // the module's background child must be gone
	}{
		{
			name:     "module exits mid-stream",
			typ:      "quitter",
			files:    []testFile{huge},
			wantIs:   []error{syscall.EPIPE},
			wantText: []string{"update module quitter: Download: stopped reading streams/huge.bin", "exit status 3", "giving up"},
		},
		{
			name:     "module stops reading mid-stream and hangs",
			typ:      "staller",
			timeout:  300 * time.Millisecond,
			files:    []testFile{huge},
			wantIs:   []error{syscall.EPIPE},
			wantText: []string{"stopped reading streams/huge.bin", "timed out after 300ms"},
			childPID: true,
		},
		{
			name:     "module skips a stream",
			typ:      "skipper",
			files:    []testFile{good},
			wantText: []string{"exited without opening streams/a.txt"},
		},
		{
			name:     "module exits before the second stream",
			typ:      "oneshot",
			files:    []testFile{{name: "x", data: nil}, good},
			wantText: []string{"update module oneshot: Download: exited before reading stream-next for a.txt"},
		},
		{
			name:     "module's Download fails without reading",
			typ:      "failer",
			files:    []testFile{good},
			wantText: []string{"update module failer: Download: exit status 2: no download"},
			gone:     "files/a.txt",
		},
		{
			name:   "checksum mismatch while streaming",
			typ:    "streamer",
			files:  []testFile{good, badBig},
			wantIs: []error{artifact.ErrChecksum},
		},
		{
			name:   "checksum mismatch in files/",
			typ:    "ignorer",
			files:  []testFile{badSmall},
			wantIs: []error{artifact.ErrChecksum},
			gone:   "files/a.txt",
		},
		{
			name:     "module hangs in Download",
			typ:      "sleeper",
			timeout:  300 * time.Millisecond,
			files:    []testFile{good},
			wantIs:   []error{ErrTimeout},
			wantText: []string{"update module sleeper: Download: timed out after 300ms"},
			childPID: true,
		},
		{
			name:     "module ignoring SIGTERM hangs in Download",
			typ:      "hanger",
			timeout:  300 * time.Millisecond,
			files:    []testFile{good},
			wantIs:   []error{ErrTimeout},
			childPID: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			r := newTestRunner(t)
			if tt.timeout > 0 {
				r.Timeout = tt.timeout
			}
			p := newTree(t, tt.typ)
			d, err := lookup(t, r, tt.typ).Download(t.Context(), p)
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			var storeErr error
			for _, f := range tt.files {
				if storeErr = d.Store(f.artifactFile(), f.reader()); storeErr != nil {
					break
				}
			}
			if storeErr == nil {
				t.Fatal("every Store succeeded")
			}
			for _, target := range tt.wantIs {
				if !errors.Is(storeErr, target) {
					t.Errorf("Store error %q does not wrap %v", storeErr, target)
				}
			}
			for _, s := range tt.wantText {
				if !strings.Contains(storeErr.Error(), s) {
					t.Errorf("Store error %q does not contain %q", storeErr, s)
				}
			}
			if err := d.Store(good.artifactFile(), good.reader()); err != storeErr {
				t.Errorf("Store after a failure = %v, want the first failure again", err)
			}
			d.Abort()
			d.Abort()
			if err := d.Finish(t.Context()); err == nil {
				t.Error("Finish after a failed Store succeeded")
			}
			if tt.gone != "" {
				if _, err := os.Lstat(filepath.Join(p.Tree, tt.gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: %v, want it absent", tt.gone, err)
				}
			}
			for _, gone := range []string{"stream-next", "streams"} {
				if _, err := os.Lstat(filepath.Join(p.Tree, gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after Abort: %v, want it removed", gone, err)
				}
			}
			if tt.childPID {
				waitGone(t, filepath.Join(p.Tree, "child.pid"))
			}
			checkGoroutines(t, before)
		})
	}
}

// TestDownloadFinishCancelled: a module that never ends its Download is
// killed when Finish's context ends.
func TestDownloadFinishCancelled(t *testing.T) {
	r := newTestRunner(t)
	p := newTree(t, "hanger")
	d, err := lookup(t, r, "hanger").Download(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Abort()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err = d.Finish(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Finish = %v, want a context deadline error", err)
	}
	waitGone(t, filepath.Join(p.Tree, "child.pid"))
}

func TestDownloadRejectsBadFiles(t *testing.T) {
	r := newTestRunner(t)
	p := newTree(t, "ignorer")
	d, err := lookup(t, r, "ignorer").Download(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Abort()
	f := testFile{name: "../escape", data: []byte("x")}
	if err := d.Store(f.artifactFile(), f.reader()); err == nil || !strings.Contains(err.Error(), "not a plain file name") {
		t.Errorf("Store(../escape) = %v, want a name error", err)
	}
}
