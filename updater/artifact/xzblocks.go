package artifact

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// xzBlocks passes an xz stream to the decoder unchanged while following its
// structure (stream header, block headers, LZMA2 chunk headers, block
// padding and check) far enough to see every block header. The decoder
// allocates a block's whole dictionary when the block starts, and the size
// comes from the block header, so a header asking for more than maxXZDict
// is refused here, in the Read that would have handed it over. Parsing
// stops at the index: the decoder reads the stream as a single stream and
// refuses anything after it.
type xzBlocks struct {
	r     io.Reader
	state xzState
	want  int    // bytes to collect into hdr before step
	hdr   []byte // collected bytes of the current header
	skip  int64  // bytes to pass unexamined (chunk data, padding, check)
	check int64  // size of each block's check field, from the stream flags
	block int64  // bytes of the current block so far, for its padding
	index int    // blocks seen, for errors
	err   error  // sticky
}

type xzState int

const (
	xzStreamHeader xzState = iota // 12 bytes
	xzBlockStart                  // 1 byte: header size, or 0 for the index
	xzBlockHeader                 // the rest of the block header
	xzChunk                       // 1 byte: LZMA2 control
	xzChunkHeader                 // the rest of the LZMA2 chunk header
	xzIndex                       // nothing more to examine
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

func (x *xzBlocks) Read(p []byte) (int, error) {
	if x.err != nil {
		return 0, x.err
	}
	if x.want == 0 && x.state == xzStreamHeader {
		x.want = 12
	}
	n, err := x.r.Read(p)
	if serr := x.scan(p[:n]); serr != nil {
		x.err = serr
		return 0, serr
	}
	return n, err
}

func (x *xzBlocks) scan(p []byte) error {
	for len(p) > 0 && x.state != xzIndex {
		if x.skip > 0 {
			n := min(int64(len(p)), x.skip)
			x.skip -= n
			p = p[n:]
			continue
		}
		k := min(len(p), x.want-len(x.hdr))
		x.hdr = append(x.hdr, p[:k]...)
		p = p[k:]
		if len(x.hdr) == x.want {
			if err := x.step(); err != nil {
				return err
			}
		}
	}
	return nil
}

// step acts on a complete x.hdr and says what to collect or skip next.
func (x *xzBlocks) step() error {
	h := x.hdr
	x.hdr, x.want = x.hdr[:0], 1
	switch x.state {
	case xzStreamHeader:
		if !bytes.Equal(h[:6], xzMagic) {
			return fmt.Errorf("xz: not an xz stream (magic %x)", h[:6])
		}
		// Check sizes by type: 0, then 4, 8, 16, 32, 64 bytes for
		// each group of three IDs (xz file format 2.1.1.2).
		if t := h[7] & 0x0f; t > 0 {
			x.check = 4 << ((t - 1) / 3)
		}
		x.state = xzBlockStart
	case xzBlockStart:
		if h[0] == 0 {
			x.state = xzIndex
			return nil
		}
		x.index++
		x.hdr, x.want = append(x.hdr, h[0]), (int(h[0])+1)*4
		x.state = xzBlockHeader
	case xzBlockHeader:
		if err := checkXZBlockHeader(h); err != nil {
			return fmt.Errorf("xz: block %d: %w", x.index, err)
		}
		x.block = int64(len(h))
		x.state = xzChunk
	case xzChunk:
		c := h[0]
		switch {
		case c == 0: // end of the block's LZMA2 data
			x.block++
			x.skip = (4-x.block%4)%4 + x.check
			x.state = xzBlockStart
			return nil
		case c == 1 || c == 2: // uncompressed chunk: 2 bytes of size
			x.want = 3
		case c >= 0x80: // LZMA chunk: sizes, and a properties byte on a state reset with new properties
			x.want = 5
			if c >= 0xc0 {
				x.want = 6
			}
		default:
			return fmt.Errorf("xz: block %d: invalid LZMA2 control byte %#x", x.index, c)
		}
		x.hdr = append(x.hdr, c)
		x.state = xzChunkHeader
	case xzChunkHeader:
		size := int64(binary.BigEndian.Uint16(h[1:3])) + 1
		if h[0] >= 0x80 {
			size = int64(binary.BigEndian.Uint16(h[3:5])) + 1 // packed size
		}
		x.block += int64(len(h)) + size
		x.skip = size
		x.state = xzChunk
	}
	return nil
}

// checkXZBlockHeader refuses a block header whose LZMA2 filter asks for a
// dictionary above maxXZDict, or that has no LZMA2 filter to follow.
func checkXZBlockHeader(b []byte) error {
	flags := b[1]
	p := 2
	varint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9 && p < len(b); i++ {
			c := b[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, nil
			}
		}
		return 0, fmt.Errorf("malformed block header")
	}
	if flags&0x40 != 0 { // compressed size
		if _, err := varint(); err != nil {
			return err
		}
	}
	if flags&0x80 != 0 { // uncompressed size
		if _, err := varint(); err != nil {
			return err
		}
	}
	var last uint64
	for range int(flags&0x03) + 1 {
		id, err := varint()
		if err != nil {
			return err
		}
		n, err := varint()
		if err != nil {
			return err
		}
		if n > uint64(len(b)-p) {
			return fmt.Errorf("malformed block header")
		}
		if id == 0x21 { // LZMA2: one byte encodes the dictionary size
			if n != 1 || b[p] > 40 {
				return fmt.Errorf("invalid LZMA2 properties")
			}
			d := b[p]
			dict := uint64(2|d&1) << (d/2 + 11)
			if d == 40 {
				dict = 1<<32 - 1
			}
			if dict > maxXZDict {
				return fmt.Errorf("dictionary of %d bytes is above the %d byte limit", dict, maxXZDict)
			}
		}
		last = id
		p += int(n)
	}
	if last != 0x21 {
		return fmt.Errorf("filter chain does not end in LZMA2 (filter %#x)", last)
	}
	return nil
}
