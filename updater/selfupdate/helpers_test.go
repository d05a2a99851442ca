package selfupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/edgefort/edgefort/internal/testkit"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/module"
)

// Fake agent binaries: shell scripts that answer "version" like edgefort.
var (
	oldAgent = []byte("#!/bin/sh\nif [ \"$1\" = version ]; then echo 'edgefort 1.0.0'; exit 0; fi\nexit 2\n")
	newAgent = []byte("#!/bin/sh\nif [ \"$1\" = version ]; then echo 'edgefort 9.9.9'; echo 'commit abc'; exit 0; fi\nexit 2\n")
	badAgent = []byte("#!/bin/sh\necho 'edgefort 9.9.9'\necho 'cannot start: illegal instruction' >&2\nexit 1\n")
	// notAgent runs fine but is some other program.
	notAgent = []byte("#!/bin/sh\necho 'BusyBox v1.36.1 multi-call binary.'\n")
	// garbage is neither a script nor an executable format the kernel knows.
	garbage = []byte("\x7fELF\x02\x01\x01\x00truncated\x00\x00\xff\xfe")
)

// testEnv is one agent install: a directory with the binary, and a tree.
type testEnv struct {
	t    *testing.T
	dir  string
	ins  *Installer
	p    module.Payload
	logs *testkit.SyncBuffer

	mu      sync.Mutex // guards running
	running []byte     // content of the "running executable", for checkRunning
}

// newTestEnv writes oldAgent as the binary and returns an Installer whose
// running-executable check compares with env.running (oldAgent at first)
// and whose Ready succeeds.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, running: oldAgent, logs: &testkit.SyncBuffer{}}
	bin := filepath.Join(dir, "bin", "edgefort")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, oldAgent, 0o755); err != nil {
		t.Fatal(err)
	}
	e.p = module.Payload{Index: 0, Type: Type, Tree: filepath.Join(dir, "payloads", "0000", "tree")}
	e.ins = &Installer{
		Binary:        bin,
		Ready:         func(context.Context) error { return nil },
		HealthTimeout: 2 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(e.logs, nil)),
		checkRunning: func(binary string, want [32]byte) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			if sha256.Sum256(e.running) != want {
				return errors.New("fake: running executable differs")
			}
			return nil
		},
		readyPoll: 10 * time.Millisecond,
	}
	return e
}

func (e *testEnv) setRunning(b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running = b
}

func (e *testEnv) binary() string   { return e.ins.Binary }
func (e *testEnv) newPath() string  { return filepath.Join(filepath.Dir(e.ins.Binary), ".edgefort.new") }
func (e *testEnv) prevPath() string { return e.ins.Binary + ".previous" }

// download stores content as the payload's one file and finishes.
func (e *testEnv) download(content []byte) {
	e.t.Helper()
	dl, err := e.ins.Download(context.Background(), e.p)
	if err != nil {
		e.t.Fatalf("Download: %v", err)
	}
	defer dl.Abort() // as the state machine does; harmless after Finish
	if err := dl.Store(testFile("edgefort", content), newChecksumReader(content, sha256.Sum256(content))); err != nil {
		e.t.Fatalf("Store: %v", err)
	}
	if err := dl.Finish(context.Background()); err != nil {
		e.t.Fatalf("Finish: %v", err)
	}
}

// call runs a state and fails the test on error.
func (e *testEnv) call(state string) {
	e.t.Helper()
	if err := e.ins.Call(context.Background(), e.p, state); err != nil {
		e.t.Fatalf("%s: %v", state, err)
	}
}

// wantFile checks path's content.
func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %q, want %q", filepath.Base(path), got, want)
	}
}

// wantMissing checks that path does not exist.
func wantMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: exists (err %v), want it gone", filepath.Base(path), err)
	}
}

func testFile(name string, content []byte) *artifact.File {
	return &artifact.File{
		Payload:  0,
		Type:     Type,
		Name:     name,
		Path:     "data/0000/" + name,
		Size:     int64(len(content)),
		Checksum: sha256.Sum256(content),
	}
}

// checksumReader behaves like the artifact reader's file stream: content in
// small reads, then io.EOF when it matches want, else an error wrapping
// artifact.ErrChecksum.
type checksumReader struct {
	r    io.Reader
	h    [32]byte
	want [32]byte
}

func newChecksumReader(content []byte, want [32]byte) *checksumReader {
	return &checksumReader{r: io.LimitReader(bytes.NewReader(content), int64(len(content))), h: sha256.Sum256(content), want: want}
}

func (c *checksumReader) Read(p []byte) (int, error) {
	if len(p) > 7 {
		p = p[:7]
	}
	n, err := c.r.Read(p)
	if err == io.EOF && c.h != c.want {
		return n, fmt.Errorf("%w: data/0000/edgefort: manifest has %x, content has %x", artifact.ErrChecksum, c.want, c.h)
	}
	return n, err
}

// errContains checks that err is non-nil and contains every part.
func errContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("err = %q, want it to contain %q", err, p)
		}
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum)
}
