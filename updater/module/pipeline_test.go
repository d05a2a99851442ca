package module

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// sizeRecorder records the size of every Write and fails after failAfter
// bytes if failAfter > 0.
type sizeRecorder struct {
	buf       bytes.Buffer
	sizes     []int
	failAfter int
}

var errRecorderFull = errors.New("full")

func (r *sizeRecorder) Write(p []byte) (int, error) {
	r.sizes = append(r.sizes, len(p))
	if r.failAfter > 0 && r.buf.Len()+len(p) > r.failAfter {
		n := r.failAfter - r.buf.Len()
		r.buf.Write(p[:n])
		return n, errRecorderFull
	}
	return r.buf.Write(p)
}

func TestSmallWrites(t *testing.T) {
	data := randomBytes(3*FileWriteSize + 100)
	tests := []struct {
		name      string
		write     []byte
		failAfter int
		wantCalls int
		wantN     int
		wantErr   error
	}{
		{"empty", nil, 0, 0, 0, nil},
		{"smaller than a piece", data[:100], 0, 1, 100, nil},
		{"exactly one piece", data[:FileWriteSize], 0, 1, FileWriteSize, nil},
		{"pieces and a tail", data, 0, 4, len(data), nil},
		{"fails in the second piece", data, FileWriteSize + 10, 2, FileWriteSize + 10, errRecorderFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &sizeRecorder{failAfter: tt.failAfter}
			n, err := SmallWrites(rec).Write(tt.write)
			if n != tt.wantN || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write = %d, %v; want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			if len(rec.sizes) != tt.wantCalls {
				t.Errorf("%d write calls %v, want %d", len(rec.sizes), rec.sizes, tt.wantCalls)
			}
			for _, s := range rec.sizes {
				if s > FileWriteSize {
					t.Errorf("a write of %d bytes, over %d", s, FileWriteSize)
				}
			}
			if !bytes.Equal(rec.buf.Bytes(), tt.write[:n]) {
				t.Error("the bytes written differ from the input")
			}
		})
	}
}

// TestCopySeparatesErrors: Copy tells the writer's failure (the module,
// the disk) from the reader's (the Artifact), for readers with and
// without WriteTo.
func TestCopySeparatesErrors(t *testing.T) {
	errArtifact := errors.New("checksum mismatch")
	data := randomBytes(100 << 10)
	tests := []struct {
		name      string
		r         func() io.Reader
		failAfter int
		wantW     error
		wantR     error
	}{
		{"ok, WriterTo", func() io.Reader { return bytes.NewReader(data) }, 0, nil, nil},
		{"ok, plain reader", func() io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} }, 0, nil, nil},
		{"writer fails", func() io.Reader { return bytes.NewReader(data) }, 1000, errRecorderFull, nil},
		{"reader fails", func() io.Reader {
			return struct{ io.Reader }{io.MultiReader(bytes.NewReader(data[:5000]), errReader{errArtifact})}
		}, 0, nil, errArtifact},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &sizeRecorder{failAfter: tt.failAfter}
			werr, rerr := Copy(rec, tt.r())
			if !errors.Is(werr, tt.wantW) || (tt.wantW == nil) != (werr == nil) {
				t.Errorf("write error = %v, want %v", werr, tt.wantW)
			}
			if !errors.Is(rerr, tt.wantR) || (tt.wantR == nil) != (rerr == nil) {
				t.Errorf("read error = %v, want %v", rerr, tt.wantR)
			}
			if werr == nil && rerr == nil && !bytes.Equal(rec.buf.Bytes(), data) {
				t.Error("copied bytes differ")
			}
		})
	}
}
