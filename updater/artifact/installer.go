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
	buf  []byte
	err  error // sticky
	done bool  // read to the end and matched
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

// WriteTo lets io.Copy move the file with the reader's large buffer.
func (s *fileStream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		n, err := s.Read(s.buf)
		if n > 0 {
			m, werr := w.Write(s.buf[:n])
			total += int64(m)
			if werr == nil && m != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
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

// fileStream keeps io.Copy on its large buffer.
var (
	_ io.WriterTo = (*fileStream)(nil)
	_ Installer   = discard{}
)
