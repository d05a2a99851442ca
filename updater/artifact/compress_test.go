package artifact

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestParseCompression(t *testing.T) {
	tests := []struct {
		in     string
		want   Compression
		suffix string
		ok     bool
	}{
		{"gzip", Gzip, ".gz", true},
		{"none", None, "", true},
		{"lzma", XZ, ".xz", true},
		{"xz", XZ, ".xz", true},
		{"zstd", Zstd, ".zst", true},
		{"zstd_best", 0, "", false}, // mender-artifact 3.10.1+ level names are not taken
		{"bzip2", 0, "", false},
		{"", 0, "", false},
	}
	for _, tt := range tests {
		c, err := ParseCompression(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (c != tt.want || c.Suffix() != tt.suffix)) {
			t.Errorf("ParseCompression(%q) = %v (suffix %q), %v; want %v (suffix %q), ok %v", tt.in, c, c.Suffix(), err, tt.want, tt.suffix, tt.ok)
		}
		if tt.ok {
			if back, _ := compressionForSuffix(c.Suffix()); back != c {
				t.Errorf("suffix %q maps back to %v", c.Suffix(), back)
			}
		}
	}
}

func TestCompressRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("edgefort artifact "), 10000)
	for _, c := range []Compression{Gzip, None, XZ, Zstd} {
		var b bytes.Buffer
		zw, err := c.newWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		zr, err := c.newReader(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		got, err := io.ReadAll(zr)
		zr.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%v: round trip: %d bytes, %v", c, len(got), err)
		}
	}
}

// TestXZDictionaryLimit: an xz stream asking for a dictionary above the
// limit is refused before the decoder allocates it.
func TestXZDictionaryLimit(t *testing.T) {
	var b bytes.Buffer
	zw, _ := XZ.newWriter(&b)
	zw.Write([]byte("hello"))
	zw.Close()
	small := b.Bytes()
	withDict := func(code byte) []byte {
		out := bytes.Clone(small)
		size := (int(out[12]) + 1) * 4
		hdr := out[12 : 12+size]
		i := bytes.Index(hdr, []byte{0x21, 0x01}) // LZMA2 filter, 1 property byte
		if i < 0 {
			t.Fatal("no LZMA2 filter in the first block header")
		}
		hdr[i+2] = code
		binary.LittleEndian.PutUint32(hdr[size-4:], crc32.ChecksumIEEE(hdr[:size-4]))
		return out
	}
	tests := []struct {
		name    string
		code    byte
		wantErr string
	}{
		{"64 MiB, as xz -9", 28, ""},
		{"128 MiB", 30, "above the"},
		{"4 GiB", 40, "above the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zr, err := XZ.newReader(bytes.NewReader(withDict(tt.code)))
			if err == nil {
				var got []byte
				got, err = io.ReadAll(zr)
				if err == nil && string(got) != "hello" {
					t.Fatalf("got %q", got)
				}
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestZstdWriterWindow: the writer's frames ask the device's decoder for a
// small window, which bounds the install's memory (see zstdWindow). A
// payload larger than the window makes the encoder state it.
func TestZstdWriterWindow(t *testing.T) {
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i*2654435761>>13) ^ byte(i>>9)
	}
	var b bytes.Buffer
	zw, err := Zstd.newWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize == 0 || h.WindowSize > zstdWindow {
		t.Errorf("frame window %d, want at most %d", h.WindowSize, zstdWindow)
	}
}
