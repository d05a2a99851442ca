package artifact

import (
	"bufio"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how a header or data member is compressed; the member's
// name suffix says which. The zero value is Gzip, mender-artifact's default.
type Compression int

const (
	Gzip Compression = iota // suffix .gz
	None                    // no suffix
	XZ                      // suffix .xz; mender-artifact calls it "lzma"
	Zstd                    // suffix .zst; mender-artifact 3.10.1 and later only
)

// Decoder limits against hostile members. xz level 9, what mender-artifact
// 3.9 writes for "lzma" (liblzma, one block), uses a 64 MiB dictionary;
// zstd windows above 8 MiB need --long.
const (
	maxXZDict     = 64 << 20
	maxZstdWindow = 64 << 20
	readAheadSize = 256 << 10 // buffer in front of a decompressor
)

// zstdWindow is the window the writer uses. The device's decoder holds a
// window's worth of history: with the encoder's default of 8 MiB, a 1 GiB
// install of a zstd Artifact peaked at 34–35 MiB RSS, above issue 5's
// 32 MiB; with 2 MiB it peaks at 28–29 MiB (scripts/bench/install.sh).
// Payloads compress a little less for it.
const zstdWindow = 2 << 20

// ParseCompression maps a --compression value to a Compression: none, gzip,
// lzma (or xz), zstd.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "gzip", "gz":
		return Gzip, nil
	case "none":
		return None, nil
	case "lzma", "xz":
		return XZ, nil
	case "zstd":
		return Zstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q: want gzip, lzma, zstd or none", s)
}

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case None:
		return "none"
	case XZ:
		return "lzma"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// Suffix is the member name suffix: "", ".gz", ".xz" or ".zst".
func (c Compression) Suffix() string {
	switch c {
	case Gzip:
		return ".gz"
	case XZ:
		return ".xz"
	case Zstd:
		return ".zst"
	}
	return ""
}

func compressionForSuffix(s string) (Compression, bool) {
	switch s {
	case "":
		return None, true
	case ".gz":
		return Gzip, true
	case ".xz":
		return XZ, true
	case ".zst":
		return Zstd, true
	}
	return 0, false
}

// newReader decompresses r as exactly one compressed stream: a gzip
// member, an xz stream or a run of zstd frames. Its io.EOF means the
// stream ended where r ends; data after the end of a gzip member or xz
// stream is an error, never a second stream, since nothing the manifest
// signs covers it. (zstd frames follow each other by design; what they
// decompress to is bounded by the caller, see dataLimit.) Close releases
// the decoder; it does not close r.
func (c Compression) newReader(r io.Reader) (io.ReadCloser, error) {
	if c == None {
		return io.NopCloser(r), nil
	}
	br := bufio.NewReaderSize(r, readAheadSize)
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(false)
		return &streamEnd{Reader: zr, rest: br, closer: zr, what: "gzip"}, nil
	case XZ:
		// xzBlocks refuses any block whose dictionary is above maxXZDict
		// before the decoder sees its header. DictCap is the floor of the
		// dictionary size; each block's own size is used when larger.
		zr, err := xz.ReaderConfig{DictCap: 4096, SingleStream: true}.NewReader(&xzBlocks{r: br})
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(zr), nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("unknown compression %d", int(c))
}

// streamEnd turns the decoder's io.EOF into an error when its input holds
// more bytes after the stream.
type streamEnd struct {
	io.Reader
	rest   io.ByteReader
	closer io.Closer
	what   string
}

func (s *streamEnd) Read(p []byte) (int, error) {
	n, err := s.Reader.Read(p)
	if err == io.EOF {
		if _, rerr := s.rest.ReadByte(); rerr != io.EOF {
			if rerr != nil {
				return n, fmt.Errorf("%s: after the end of the stream: %w", s.what, rerr)
			}
			return n, fmt.Errorf("%s: data after the end of the compressed stream", s.what)
		}
	}
	return n, err
}

func (s *streamEnd) Close() error { return s.closer.Close() }

// newWriter compresses into w. Close flushes; it does not close w.
func (c Compression) newWriter(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case None:
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case XZ:
		return xz.WriterConfig{}.NewWriter(w)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow))
	}
	return nil, fmt.Errorf("unknown compression %d", int(c))
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
