package module

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

func TestFlusherWritesEverything(t *testing.T) {
	// Three flushes' worth and a tail, in odd-sized writes.
	want := bytes.Repeat([]byte("0123456789abcdef"), (3*FlushEvery+12345)/16)
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl := NewFlusher(f)
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 3<<20+7)
		if _, err := fl.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := fl.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file has %d bytes, want the %d written", len(got), len(want))
	}
}

// TestFlusherReportsFlushError flushes a pipe, which cannot be synced:
// the background flush fails and Close must say so, since the final fsync
// of a file would not see a writeback error a second time.
func TestFlusherReportsFlushError(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("fdatasync of a pipe fails with EINVAL on Linux")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	drained := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		drained <- err
	}()
	fl := NewFlusher(w)
	if _, err := fl.Write(make([]byte, FlushEvery)); err != nil {
		t.Fatal(err)
	}
	err = fl.Close()
	w.Close()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Close = %v, want the flush's EINVAL", err)
	}
}
