package module

import (
	"errors"
	"io"
)

// Copy copies r to w and returns the error of the write side (the module
// stopped reading, a full disk) and of the read side (the Artifact: a
// checksum mismatch or a cut download) separately.
//
// It adds no read-ahead of its own: the Artifact reader's payload files
// implement io.WriterTo as a pipeline that reads, hashes and writes in
// separate goroutines (artifact's fileStream.WriteTo), which io.Copy uses.
func Copy(w io.Writer, r io.Reader) (werr, rerr error) {
	ew := &errWriter{w: w}
	_, err := io.Copy(ew, r)
	if ew.err != nil && errors.Is(err, ew.err) {
		return ew.err, nil
	}
	return nil, err
}

// errWriter remembers w's first error, so that Copy can tell it from
// the reader's.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// FileWriteSize is the most SmallWrites gives one write system call. On the
// 2-vCPU Firecracker VM where installs were measured, one 1 MiB write()
// makes the kernel take large page-cache folios from free memory that the
// guest had handed back to the host (free page reporting), and each costs
// a fault on the host: writing 1 GiB took 2.5 s, 2.4 s of it system time,
// after a few seconds idle. In 32 KiB writes it took 1.1–1.6 s (0.6–1.0 s
// system), beside cp + sync, which copies in the kernel page by page, at
// 1.7–2.1 s in the same run (scripts/bench/install.sh). Where that effect
// is absent the extra system calls cost a few milliseconds per GiB.
const FileWriteSize = 32 << 10

// SmallWrites returns a writer that passes each Write on to w in pieces of
// at most FileWriteSize: for writes into the page cache, and into the
// FIFO of an update module's stream, whose reads follow the writes.
func SmallWrites(w io.Writer) io.Writer { return smallWriter{w} }

type smallWriter struct{ w io.Writer }

func (s smallWriter) Write(p []byte) (int, error) {
	var n int
	for n < len(p) {
		m, err := s.w.Write(p[n:min(len(p), n+FileWriteSize)])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
	}
	return n, nil
}
