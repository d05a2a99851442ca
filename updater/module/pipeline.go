package module

import (
	"errors"
	"io"
)

// Read-ahead for streaming a payload into a module: the Artifact reader
// (which hashes as it reads) fills chunks in one goroutine while another
// writes the previous ones to the FIFO, so hashing and the module's writes
// overlap instead of taking turns. Measured by scripts/bench/install.sh.
const (
	aheadChunk  = 1 << 20
	aheadChunks = 4
)

// CopyAhead copies r to w with read-ahead. It returns the error of the
// write side (the module stopped reading) and of the read side (the
// Artifact: a checksum mismatch or a cut download) separately; the read
// goroutine has ended when it returns.
//
// A reader that pipelines on its own (the Artifact reader's payload files
// implement io.WriterTo that way) is used through WriteTo instead.
func CopyAhead(w io.Writer, r io.Reader) (werr, rerr error) {
	if wt, ok := r.(io.WriterTo); ok {
		ew := &errWriter{w: w}
		_, err := wt.WriteTo(ew)
		if ew.err != nil && errors.Is(err, ew.err) {
			return ew.err, nil
		}
		return nil, err
	}
	type chunk struct {
		b   []byte
		err error
	}
	free := make(chan []byte, aheadChunks)
	for range aheadChunks {
		free <- make([]byte, aheadChunk)
	}
	full := make(chan chunk, aheadChunks)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(full)
		for {
			// Stop first: after a write error, read no further (it may be
			// a slow download) even if a buffer is free.
			select {
			case <-stop:
				return
			default:
			}
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, b)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF // a short last chunk
			}
			full <- chunk{b[:n], err}
			if err != nil {
				return
			}
		}
	}()
	for c := range full {
		if len(c.b) > 0 && werr == nil {
			if _, err := w.Write(c.b); err != nil {
				werr = err
				close(stop)
			}
		}
		if c.err != nil && c.err != io.EOF {
			rerr = c.err
		}
		if werr == nil {
			free <- c.b[:cap(c.b)]
		}
	}
	<-done
	return werr, rerr
}

// errWriter remembers w's first error, so that CopyAhead can tell it from
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
// at most FileWriteSize: for writes into the page cache (files, not pipes).
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
