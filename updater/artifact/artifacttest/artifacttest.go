// Package artifacttest builds hostile Mender Artifacts for tests: bytes
// appended to a data member behind the signature's back, and the
// compressed streams that make such bytes expensive to read (a zstd frame
// of zeros, an xz stream declaring a huge dictionary). It is imported by
// tests only.
package artifacttest

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/ulikunitz/xz"
)

// AppendToMember returns artifact with tail appended to the outer member
// called name. Nothing the manifest signs changes: it lists the
// checksums of the uncompressed payload files, not of the data members.
func AppendToMember(artifact []byte, name string, tail []byte) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(artifact))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		if h.Name == name {
			data, found = append(data, tail...), true
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: h.Name, Size: int64(len(data)), Mode: 0o600, ModTime: h.ModTime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("no member %q", name)
	}
	return out.Bytes(), tw.Close()
}

// ZstdZeros is one zstd frame of n zero bytes (n a multiple of 128 KiB)
// made of RLE blocks, 4 bytes per 128 KiB: 64 GiB takes 2 MiB. Its window
// is 64 MiB, so a decoder that goes through it fills 64 MiB of history.
func ZstdZeros(n int64) []byte {
	const block = 128 << 10
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3} // magic; no content size, no checksum; window 2^(10+16)
	for left := n; left > 0; left -= block {
		last := uint32(0)
		if left <= block {
			last = 1
		}
		h := last | 1<<1 | block<<3 // RLE block of 128 KiB
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
}

// XZ compresses data as one xz stream in blocks of at most blockSize bytes
// (0: one block) and then sets the LZMA2 dictionary-size code of block
// number dictBlock (from 1; 0: none) to dictCode, fixing the header's
// CRC32. Code 36 asks for 1 GiB, 38 for 2 GiB.
func XZ(data []byte, blockSize int64, dictBlock int, dictCode byte) ([]byte, error) {
	var b bytes.Buffer
	zw, err := xz.WriterConfig{BlockSize: blockSize}.NewWriter(&b)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	out := b.Bytes()
	if dictBlock == 0 {
		return out, nil
	}
	off, err := xzBlockOffset(out, dictBlock)
	if err != nil {
		return nil, err
	}
	size := (int(out[off]) + 1) * 4
	hdr := out[off : off+size]
	i := bytes.Index(hdr, []byte{0x21, 0x01}) // LZMA2 filter, 1 property byte
	if i < 0 {
		return nil, fmt.Errorf("xz block %d: no LZMA2 filter in its header", dictBlock)
	}
	hdr[i+2] = dictCode
	binary.LittleEndian.PutUint32(hdr[size-4:], crc32.ChecksumIEEE(hdr[:size-4]))
	return out, nil
}

// xzBlockOffset finds block n (from 1) of a one-stream xz file through its
// index, which lists each block's unpadded size.
func xzBlockOffset(s []byte, n int) (int, error) {
	check := 0
	if t := s[7] & 0x0f; t > 0 {
		check = 4 << ((t - 1) / 3)
	}
	footer := s[len(s)-12:]
	index := len(s) - 12 - (int(binary.LittleEndian.Uint32(footer[4:8]))+1)*4
	p := index + 1
	varint := func() int {
		var v int
		for i := 0; ; i++ {
			c := s[p]
			p++
			v |= int(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v
			}
		}
	}
	count := varint()
	if n > count {
		return 0, fmt.Errorf("xz stream has %d blocks, not %d", count, n)
	}
	off := 12
	for range n - 1 {
		unpadded := varint()
		varint() // uncompressed size
		off += (unpadded-check+3)/4*4 + check
	}
	return off, nil
}
