package artifact

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/edgefort/edgefort/updater/artifact/artifacttest"
)

// fuzzSeeds are small valid Artifacts: the writer's, in every compression,
// signed and not, and the golden ones from mender-artifact.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, c := range []Compression{None, Gzip, XZ, Zstd} {
		for _, key := range []bool{false, true} {
			spec := testSpec(c, nil)
			if key {
				spec.Key = testKeys().ec
			}
			spec.Payloads[0].Files[1] = memSource("b.bin", []byte("small"))
			seeds = append(seeds, writeArtifact(f, spec))
		}
	}
	arts, _ := filepath.Glob(filepath.Join(goldenDir, "*.mender"))
	for _, p := range arts {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// countingInstaller reads each file whole and counts the calls.
type countingInstaller struct{ stored, verified int }

func (c *countingInstaller) Store(_ *File, r io.Reader) error {
	c.stored++
	_, err := io.Copy(io.Discard, r)
	return err
}

func (c *countingInstaller) Verified(*File) error { c.verified++; return nil }

// FuzzReadArtifact feeds arbitrary bytes to the reader: it must never
// panic or hang, and must declare files verified only when the whole
// Artifact was accepted.
func FuzzReadArtifact(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		inst := &countingInstaller{}
		h, err := Read(bytes.NewReader(in), Options{AugmentTypes: []string{"dir-overlay", "single-file"}}, nil, inst)
		if err != nil {
			if inst.verified > 0 {
				t.Fatalf("%d files declared verified, then error %v", inst.verified, err)
			}
			return
		}
		if inst.verified != inst.stored {
			t.Fatalf("accepted with %d files stored but %d verified", inst.stored, inst.verified)
		}
		if h.Name == "" || len(h.Depends.DeviceTypes) == 0 || len(h.Payloads) == 0 {
			t.Fatalf("accepted a header without name, device types or payloads: %+v", h)
		}
	})
}

// FuzzParseHeader feeds arbitrary bytes to the header tar parser, which
// the reader only reaches after a checksum match.
func FuzzParseHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		for _, m := range splitTar(f, s) {
			if c, ok := headerMember(m.name); ok && c == None {
				f.Add(m.data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		hf, err := parseHeaderTar(bytes.NewReader(in), false)
		if err != nil {
			return
		}
		if h, err := buildHeader(hf, false); err == nil && h.Name == "" {
			t.Fatal("accepted a header without a name")
		}
	})
}

// FuzzXZBlocks feeds arbitrary bytes to the xz reader, which follows the
// stream's structure to check every block's dictionary: it must never
// panic, and a stream the decoder accepts must decode as it would without
// the check (seeds: the writer's streams, one and several blocks).
func FuzzXZBlocks(f *testing.F) {
	for _, bs := range []int64{0, 300} {
		b, err := artifacttest.XZ(bytes.Repeat([]byte("edgefort xz "), 100), bs, 0, 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		zr, err := XZ.newReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		got, err := io.ReadAll(io.LimitReader(zr, 1<<20))
		if err != nil {
			return
		}
		plain, err := xz.ReaderConfig{SingleStream: true}.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("accepted with the check, refused without: %v", err)
		}
		want, err := io.ReadAll(io.LimitReader(plain, 1<<20))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("with the check %d bytes; without %d bytes, %v", len(got), len(want), err)
		}
	})
}
