package artifact

import (
	"archive/tar"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact/artifacttest"
)

// TestDataMemberBounds: a signed Artifact whose data member carries more
// than its tar (unsigned bytes: the manifest lists the files' checksums,
// not the member's) is refused before any file is declared verified, and
// the decompressor is stopped within a bound; the padding tar writers
// leave, and xz in several blocks, still validate.
func TestDataMemberBounds(t *testing.T) {
	all := []Compression{None, Gzip, XZ, Zstd}
	opts := Options{Keys: []crypto.PublicKey{testKeys().ec.Public()}}
	tests := []struct {
		name    string
		comps   []Compression
		tamper  func(t *testing.T, c Compression, member []byte) []byte
		wantErr string // "" for valid
	}{
		{"unchanged", all, nil, ""},
		{"GNU tar record padding", all, innerTar(func(b []byte) []byte { return append(b, make([]byte, 9216)...) }), ""},
		{"zero padding at the limit", all, innerTar(func(b []byte) []byte { return append(b, make([]byte, maxTarPadding)...) }), ""},
		{"zero padding over the limit", all, innerTar(func(b []byte) []byte { return append(b, make([]byte, maxTarPadding+1)...) }),
			"more than 65536 decompressed bytes after the end of its tar"},
		{"data after the tar", all, innerTar(func(b []byte) []byte { return append(b, "\x00\x00evil"...) }),
			"non-zero data at byte 2 after the end of its tar"},
		{"a tar header over the limit", all, innerTar(bigPAXHeader), "more than 65536 decompressed bytes for the tar header of the next entry"},
		{"a sparse entry", all, innerTar(func([]byte) []byte { return sparseTar("a.txt", []byte("hello\n"), 1<<30) }),
			`entry "a.txt": sparse files are not supported`},
		{"appended zstd frame of 8 GiB of zeros", []Compression{Zstd}, appendRaw(artifacttest.ZstdZeros(8 << 30)),
			"more than 65536 decompressed bytes after the end of its tar"},
		{"appended xz stream with a 1 GiB dictionary", []Compression{XZ}, func(t *testing.T, _ Compression, m []byte) []byte {
			return append(m, mustXZ(t, make([]byte, 1<<20), 0, 1, 36)...)
		}, "xz: unexpected data after stream"},
		{"xz block 2 with a 1 GiB dictionary", []Compression{XZ}, func(t *testing.T, _ Compression, m []byte) []byte {
			return mustXZ(t, decompress(t, XZ, m), 4096, 2, 36)
		}, "xz: block 2: dictionary of 1073741824 bytes is above the 67108864 byte limit"},
		{"xz in several blocks", []Compression{XZ}, func(t *testing.T, _ Compression, m []byte) []byte {
			return mustXZ(t, decompress(t, XZ, m), 4096, 0, 0)
		}, ""},
		{"appended gzip member", []Compression{Gzip}, func(t *testing.T, _ Compression, m []byte) []byte {
			return append(m, compress(t, Gzip, make([]byte, 1<<20))...)
		}, "gzip: data after the end of the compressed stream"},
		{"bytes after the gzip member", []Compression{Gzip}, appendRaw([]byte("junk")), "gzip: data after the end of the compressed stream"},
		{"bytes after an uncompressed tar", []Compression{None}, appendRaw(make([]byte, 1<<20)),
			"more than 65536 decompressed bytes after the end of its tar"},
	}
	for _, tt := range tests {
		for _, c := range tt.comps {
			t.Run(tt.name+"/"+c.String(), func(t *testing.T) {
				ms := splitTar(t, writeArtifact(t, testSpec(c, testKeys().ec)))
				if tt.tamper != nil {
					i := find(t, ms, dataMemberName(0, c))
					ms[i].data = tt.tamper(t, c, ms[i].data)
				}
				rec := newRecorder()
				_, err := Read(bytes.NewReader(joinTar(t, ms)), opts, nil, rec)
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("Read = %v, want a valid Artifact", err)
					}
					if len(rec.verified) != 2 {
						t.Errorf("verified %q, want both files", rec.verified)
					}
					return
				}
				if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read = %v, want an invalid-artifact error containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "data/0000") {
					t.Errorf("error %q names neither the member nor a file of it", err)
				}
				if len(rec.verified) != 0 {
					t.Errorf("files declared verified: %q", rec.verified)
				}
			})
		}
	}
}

// innerTar rewrites the uncompressed tar of a data member.
func innerTar(f func([]byte) []byte) func(*testing.T, Compression, []byte) []byte {
	return func(t *testing.T, c Compression, m []byte) []byte {
		return compress(t, c, f(decompress(t, c, m)))
	}
}

func appendRaw(tail []byte) func(*testing.T, Compression, []byte) []byte {
	return func(_ *testing.T, _ Compression, m []byte) []byte { return append(m, tail...) }
}

// bigPAXHeader gives the first entry of a tar a 100 KiB PAX record.
func bigPAXHeader(b []byte) []byte {
	tr := tar.NewReader(bytes.NewReader(b))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if i == 0 {
			h.PAXRecords = map[string]string{"comment": strings.Repeat("x", 100<<10)}
			h.Format = tar.FormatPAX
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	return out.Bytes()
}

func decompress(t *testing.T, c Compression, b []byte) []byte {
	t.Helper()
	zr, err := c.newReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compress(t *testing.T, c Compression, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := c.newWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func mustXZ(t *testing.T, data []byte, blockSize int64, dictBlock int, dictCode byte) []byte {
	t.Helper()
	b, err := artifacttest.XZ(data, blockSize, dictBlock, dictCode)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDataMemberXZFromLiblzma: data members that the xz tool (liblzma)
// writes, at mender-artifact's level 9 (64 MiB dictionary) and in several
// blocks as multi-threaded xz does, still validate through the block check.
func TestDataMemberXZFromLiblzma(t *testing.T) {
	xzPath := requirePeer(t, "xz")
	for _, args := range [][]string{{"-9"}, {"-9", "-T2", "--block-size=4096"}, {"-6", "--check=sha256", "--block-size=1000"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ms := splitTar(t, writeArtifact(t, testSpec(XZ, testKeys().ec)))
			i := find(t, ms, dataMemberName(0, XZ))
			cmd := exec.Command(xzPath, append(args, "-c")...)
			cmd.Stdin = bytes.NewReader(decompress(t, XZ, ms[i].data))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("xz %v: %v", args, err)
			}
			ms[i].data = out
			rec := newRecorder()
			if _, err := Read(bytes.NewReader(joinTar(t, ms)), Options{Keys: []crypto.PublicKey{testKeys().ec.Public()}}, nil, rec); err != nil {
				t.Fatalf("Read = %v", err)
			}
			if len(rec.verified) != 2 {
				t.Errorf("verified %q, want both files", rec.verified)
			}
		})
	}
}

// sparseTar is a tar holding one GNU sparse (PAX 0.1) entry: data at
// offset 0, then a hole up to realSize. Go's tar writer writes none, so
// the blocks are made by hand.
func sparseTar(name string, data []byte, realSize int64) []byte {
	block := func(name string, typ byte, size int) []byte {
		b := make([]byte, 512)
		copy(b, name)
		copy(b[100:], "0000644\x00")
		copy(b[108:], "0000000\x00")
		copy(b[116:], "0000000\x00")
		copy(b[124:], fmt.Sprintf("%011o\x00", size))
		copy(b[136:], "00000000000\x00")
		b[156] = typ
		copy(b[257:], "ustar\x0000")
		copy(b[148:], "        ")
		sum := 0
		for _, c := range b {
			sum += int(c)
		}
		copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	var pax []byte
	for _, kv := range [][2]string{{"GNU.sparse.numblocks", "1"}, {"GNU.sparse.map", fmt.Sprintf("0,%d", len(data))},
		{"GNU.sparse.size", fmt.Sprint(realSize)}, {"GNU.sparse.name", name}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		pax = append(pax, fmt.Sprint(n)+rec...)
	}
	out := block("PaxHeaders/"+name, tar.TypeXHeader, len(pax))
	out = append(out, pad(pax)...)
	out = append(out, block(name, tar.TypeReg, len(data))...)
	out = append(out, pad(bytes.Clone(data))...)
	return append(out, make([]byte, 1024)...)
}

// TestHeaderMemberTrailingData: the header member, too, may hold only
// bounded zero padding after its tar. The Artifacts are unsigned, so the
// manifest is rewritten with the new header's checksum.
func TestHeaderMemberTrailingData(t *testing.T) {
	tests := []struct {
		name    string
		tail    []byte
		wantErr string
	}{
		{"zero padding at the limit", make([]byte, maxTarPadding), ""},
		{"zero padding over the limit", make([]byte, maxTarPadding+1), "more than 65536 decompressed bytes after the end of its tar"},
		{"data after the tar", []byte("\x00evil"), "non-zero data at byte 1 after the end of its tar"},
	}
	for _, tt := range tests {
		for _, c := range []Compression{None, Gzip, XZ, Zstd} {
			t.Run(tt.name+"/"+c.String(), func(t *testing.T) {
				ms := splitTar(t, writeArtifact(t, testSpec(c, nil)))
				h := find(t, ms, headerBase+c.Suffix())
				old := sha256sum(ms[h].data)
				ms[h].data = compress(t, c, append(decompress(t, c, ms[h].data), tt.tail...))
				m := find(t, ms, memberManifest)
				now := sha256sum(ms[h].data)
				ms[m].data = bytes.Replace(ms[m].data, []byte(fmt.Sprintf("%x", old)), []byte(fmt.Sprintf("%x", now)), 1)
				_, err := Read(bytes.NewReader(joinTar(t, ms)), Options{}, nil, newRecorder())
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("Read = %v, want a valid Artifact", err)
					}
					return
				}
				if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), headerBase+c.Suffix()+": "+tt.wantErr) {
					t.Fatalf("Read = %v, want an invalid-artifact error naming the header and %q", err, tt.wantErr)
				}
			})
		}
	}
}
