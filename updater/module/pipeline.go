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
