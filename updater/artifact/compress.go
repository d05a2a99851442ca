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
// writes for "lzma", uses a 64 MiB dictionary; zstd windows above 8 MiB need
// --long.
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

// newReader decompresses r. Close releases the decoder; it does not close r.
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
		return zr, nil
	case XZ:
		if err := checkXZDict(br); err != nil {
			return nil, err
		}
		// DictCap is the floor of the dictionary size; the stream's own size
		// (checked above for the first block) is used when larger.
		zr, err := xz.ReaderConfig{DictCap: 4096}.NewReader(br)
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

// checkXZDict refuses an xz stream whose first block asks for a dictionary
// above maxXZDict: the decoder would allocate it up front. It peeks at the
// 12-byte stream header and the first block header without consuming them.
// Later blocks are not inspected; single-threaded xz, liblzma as used by
// mender-artifact and our writer all write one block.
func checkXZDict(br *bufio.Reader) error {
	head, err := br.Peek(13)
	if err != nil {
		return nil // too short to hold a block; the decoder reports it
	}
	size := int(head[12])
	if size == 0 {
		return nil // the index: an empty stream
	}
	size = (size + 1) * 4
	block, err := br.Peek(12 + size)
	if err != nil {
		return nil
	}
	b := block[12:]
	flags := b[1]
	p := 2
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && p < len(b); i++ {
			c := b[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 {
		if _, ok := varint(); !ok {
			return nil
		}
	}
	if flags&0x80 != 0 {
		if _, ok := varint(); !ok {
			return nil
		}
	}
	for range int(flags&0x03) + 1 {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || n > uint64(len(b)-p) {
			return nil
		}
		if id == 0x21 && n == 1 { // LZMA2: one byte encodes the dictionary size
			d := b[p]
			if d > 40 {
				return nil
			}
			dict := uint64(2|d&1) << (d/2 + 11)
			if d == 40 || dict > maxXZDict {
				return fmt.Errorf("xz: dictionary of %d bytes is above the %d byte limit", dict, maxXZDict)
			}
		}
		p += int(n)
	}
	return nil
}
