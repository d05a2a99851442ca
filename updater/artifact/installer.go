package artifact

import (
	"fmt"
	"hash"
	"io"
	"time"
)

// Installer receives payload files from Reader.Payloads. See the package
// documentation for the order of calls and when data may be activated.
type Installer interface {
	// Store receives one payload file. It must read r to io.EOF and keep
	// the bytes inactive. r's final Read returns an error wrapping
	// ErrChecksum instead of io.EOF when the content does not match the
	// manifest; Store should return it. Returning an error aborts the
	// Artifact.
	Store(f *File, r io.Reader) error
	// Verified is called for every stored file, in order, once the whole
	// Artifact has been read and verified. Only then is the file authentic
	// and complete.
	Verified(f *File) error
}

// File describes a payload file being stored.
type File struct {
	// Payload is the index NNNN of data/NNNN; Type that payload's type
	// (Payload.EffectiveType).
	Payload int
	Type    string
	// Name is the file name inside the data member (a flat name).
	Name string
	// Path is the manifest path, data/NNNN/<Name>.
	Path string
	// Size is the uncompressed size, from the data tar.
	Size int64
	// ModTime is the data tar's modification time; informational.
	ModTime time.Time
	// Checksum is the SHA-256 the manifest lists for Path.
	Checksum [32]byte
	// Augmented: the file is listed in manifest-augment, not in the signed
	// manifest. Only payload types in Options.AugmentTypes get such files.
	Augmented bool
}

// fileStream is what Installer.Store reads: the file's bytes, hashed as
// they pass. At the end it compares the hash: io.EOF on a match, an error
// wrapping ErrChecksum otherwise.
type fileStream struct {
	src  io.Reader
	left int64
	h    hash.Hash
	want [32]byte
	path string
	ring [][]byte // WriteTo's buffers, shared by the Reader's streams
	err  error    // sticky
	done bool     // read to the end and matched
}

func (s *fileStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left == 0 {
		if err := s.finish(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.src.Read(p)
	s.h.Write(p[:n])
	s.left -= int64(n)
	if err == io.EOF && s.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		s.err = formatErr("%s: %v", s.path, err)
		return n, s.err
	}
	if s.left == 0 {
		if err := s.finish(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *fileStream) finish() error {
	if s.done {
		return nil
	}
	var got [32]byte
	s.h.Sum(got[:0])
	if got != s.want {
		s.err = fmt.Errorf("%w: %s: manifest has %x, content has %x", ErrChecksum, s.path, s.want, got)
		return s.err
	}
	s.done = true
	return nil
}

// WriteTo moves the file to w through a pipeline of three goroutines: one
// reads the source into a ring of buffers, the calling one hashes each
// buffer, and one writes it to w. On two cores this keeps SHA-256, the
// slowest stage by far, from also paying for the source's copy and for
// w's writes (scripts/bench/install.sh). The outcome is what reading to
// the end would give: the bytes moved, and nil on a checksum match, an
// error wrapping ErrChecksum on a mismatch, the source's error, or w's
// first error (after which nothing more is read, and the stream is spent:
// what was hashed is no longer what was written). Every Write call has
// returned when WriteTo does, and w is written from one goroutine at a
// time, in order.
func (s *fileStream) WriteTo(w io.Writer) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left == 0 {
		return 0, s.finish()
	}
	type chunk struct {
		b   []byte
		err error // the source's, after b
	}
	free := make(chan []byte, len(s.ring))
	for _, b := range s.ring {
		free <- b
	}
	toHash := make(chan chunk, len(s.ring))
	toWrite := make(chan []byte, len(s.ring))
	stop := make(chan struct{}) // closed by the writer on w's error
	var written int64
	var werr error
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for b := range toWrite {
			if werr == nil {
				var n int
				n, werr = w.Write(b)
				written += int64(n)
				if werr == nil && n != len(b) {
					werr = io.ErrShortWrite
				}
				if werr != nil {
					close(stop)
				}
			}
			free <- b[:cap(b)]
		}
	}()
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(toHash)
		for left := s.left; left > 0; {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			if int64(len(b)) > left {
				b = b[:left]
			}
			n, err := io.ReadFull(s.src, b)
			left -= int64(n)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = io.ErrUnexpectedEOF // short of the size the tar header gave
			}
			toHash <- chunk{b[:n], err}
			if err != nil {
				return
			}
		}
	}()
	var rerr error
	for c := range toHash {
		if len(c.b) > 0 {
			s.h.Write(c.b)
			s.left -= int64(len(c.b))
			toWrite <- c.b
		}
		if c.err != nil && rerr == nil {
			rerr = c.err
		}
	}
	close(toWrite)
	<-read
	<-wrote
	switch {
	case rerr != nil:
		s.err = formatErr("%s: %v", s.path, rerr)
		return written, s.err
	case werr != nil:
		return written, werr
	}
	return written, s.finish()
}

// onlyReader hides other methods so io.CopyBuffer uses the given buffer.
type onlyReader struct{ io.Reader }

// Discard is an Installer that reads every file to its end and keeps
// nothing: what validation needs.
var Discard Installer = discard{}

type discard struct{}

func (discard) Store(_ *File, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func (discard) Verified(*File) error { return nil }

// fileStream's WriteTo is the pipeline io.Copy uses.
var (
	_ io.WriterTo = (*fileStream)(nil)
	_ Installer   = discard{}
)
