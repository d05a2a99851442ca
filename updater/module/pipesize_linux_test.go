package module

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGrowPipe: growPipe gives a pipe the capacity the stream FIFOs are
// asked for.
func TestGrowPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	before, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if before >= streamPipeSize {
		t.Fatalf("the pipe already holds %d bytes: nothing to grow", before)
	}
	if err := growPipe(w, streamPipeSize); err != nil {
		t.Fatalf("growPipe: %v", err)
	}
	got, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != streamPipeSize {
		t.Errorf("pipe size %d after growPipe, want %d", got, streamPipeSize)
	}
}
