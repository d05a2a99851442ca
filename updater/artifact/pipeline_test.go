package artifact

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
)

// failingWriter takes limit bytes, then fails.
type failingWriter struct {
	buf   bytes.Buffer
	limit int
}

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.limit {
		return 0, errDiskFull
	}
	return w.buf.Write(p)
}

func newTestStream(src io.Reader, size int64, want [32]byte) *fileStream {
	ring := make([][]byte, pipelineBuffers)
	for i := range ring {
		ring[i] = make([]byte, copyBufferSize)
	}
	return &fileStream{src: src, left: size, h: sha256.New(), want: want, path: "data/0000/f", ring: ring}
}

// TestFileStreamWriteTo drives the pipelined WriteTo through each outcome
// Read would give, and checks what reached the writer.
func TestFileStreamWriteTo(t *testing.T) {
	const size = 5*copyBufferSize + 12345 // more chunks than buffers, and a short last one
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i * 7)
	}
	good := sha256.Sum256(content)
	tests := []struct {
		name       string
		src        []byte // what the source holds
		want       [32]byte
		writer     *failingWriter
		wantErr    func(error) bool
		wantBytes  int // reaching the writer
		readAtMost int64
	}{
		{"match", content, good, &failingWriter{limit: size}, func(err error) bool { return err == nil }, size, size},
		{"checksum mismatch", content, sha256.Sum256([]byte("other")), &failingWriter{limit: size},
			func(err error) bool { return errors.Is(err, ErrChecksum) }, size, size},
		{"source cut short", content[:3*copyBufferSize+7], good, &failingWriter{limit: size},
			func(err error) bool { return errors.Is(err, ErrFormat) && errors.Is(err, io.ErrUnexpectedEOF) == false }, 3*copyBufferSize + 7, size},
		// The writer fails after two chunks: its error comes back and the
		// source is not read much further (at most the buffers in flight).
		{"writer fails", content, good, &failingWriter{limit: 2*copyBufferSize + 1},
			func(err error) bool { return errors.Is(err, errDiskFull) }, 2 * copyBufferSize, (2 + 1 + pipelineBuffers + 1) * copyBufferSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &countingReader{r: bytes.NewReader(tt.src)}
			s := newTestStream(src, size, tt.want)
			n, err := s.WriteTo(tt.writer)
			if !tt.wantErr(err) {
				t.Fatalf("WriteTo = %v", err)
			}
			if n != int64(tt.wantBytes) || tt.writer.buf.Len() != tt.wantBytes {
				t.Errorf("WriteTo moved %d bytes, writer has %d; want %d", n, tt.writer.buf.Len(), tt.wantBytes)
			}
			if !bytes.Equal(tt.writer.buf.Bytes(), content[:tt.writer.buf.Len()]) {
				t.Error("the writer got other bytes than the source's, or out of order")
			}
			if src.n > tt.readAtMost {
				t.Errorf("read %d bytes of the source, want at most %d", src.n, tt.readAtMost)
			}
			if errors.Is(err, errDiskFull) {
				return // the caller's writer failed: the stream is spent
			}
			// The stream's own outcome sticks, as with Read.
			if _, again := s.Read(make([]byte, 1)); (err == nil) != (again == io.EOF) {
				t.Errorf("Read after WriteTo = %v, after WriteTo's %v", again, err)
			}
		})
	}
}

// TestFileStreamReadThenWriteTo: a caller that reads a little, then copies
// the rest, gets the whole file verified.
func TestFileStreamReadThenWriteTo(t *testing.T) {
	content := bytes.Repeat([]byte("edgefort"), 300000)
	s := newTestStream(bytes.NewReader(content), int64(len(content)), sha256.Sum256(content))
	head := make([]byte, 1000)
	if _, err := io.ReadFull(s, head); err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	if _, err := s.WriteTo(&rest); err != nil {
		t.Fatalf("WriteTo = %v", err)
	}
	if got := append(head, rest.Bytes()...); !bytes.Equal(got, content) {
		t.Errorf("got %d bytes, not the content", len(got))
	}
}
