package fileinstall

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// writebackEvery is how much is written before writeback of it is asked
// for.
const writebackEvery = 8 << 20

// writeback writes to f and, every writebackEvery bytes, asks the kernel to
// start writing the finished range to disk (SYNC_FILE_RANGE_WRITE does not
// wait for it), so that the disk works while the Artifact is still being
// read and hashed.
type writeback struct {
	f        *os.File
	off, req int64
}

func newWriteback(f *os.File) io.Writer { return &writeback{f: f} }

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.req >= writebackEvery {
		// Best effort: an error here only means no early writeback; the
		// final fsync still makes the file durable.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.req, w.off-w.req, unix.SYNC_FILE_RANGE_WRITE)
		w.req = w.off
	}
	return n, err
}
