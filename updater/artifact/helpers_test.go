package artifact

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"io"
	"sync"
	"testing"
	"time"
)

// recorder is an Installer that keeps what it is given and records the
// calls, so tests can tell what was stored and what was declared verified.
type recorder struct {
	stored    map[string][]byte // path -> bytes Store read
	order     []string          // paths in Store order
	verified  []string          // paths in Verified order
	storeErr  error             // what the last Store's stream returned
	augmented []string          // paths of files marked Augmented
}

func newRecorder() *recorder { return &recorder{stored: map[string][]byte{}} }

func (r *recorder) Store(f *File, src io.Reader) error {
	var b bytes.Buffer
	_, err := io.Copy(&b, src)
	r.stored[f.Path] = b.Bytes()
	r.order = append(r.order, f.Path)
	if f.Augmented {
		r.augmented = append(r.augmented, f.Path)
	}
	r.storeErr = err
	return err
}

func (r *recorder) Verified(f *File) error {
	r.verified = append(r.verified, f.Path)
	return nil
}

// testKeys are Go-generated signing keys, made once per test binary.
var testKeys = sync.OnceValue(func() struct {
	rsa, rsa2, ec, ec2 crypto.Signer
} {
	r1, _ := rsa.GenerateKey(rand.Reader, 2048)
	r2, _ := rsa.GenerateKey(rand.Reader, 2048)
	e1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return struct{ rsa, rsa2, ec, ec2 crypto.Signer }{r1, r2, e1, e2}
})

// memSource is a Source over bytes.
func memSource(name string, data []byte) Source {
	return Source{Name: name, ModTime: time.Unix(1700000000, 0), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}}
}

// testSpec is a small module-image spec with two files.
func testSpec(c Compression, key crypto.Signer) *Spec {
	return &Spec{
		Name:        "app-v2",
		Group:       "prod",
		Depends:     Depends{DeviceTypes: []string{"edge-1", "edge-2"}, ArtifactNames: []string{"app-v1"}},
		Compression: c,
		Key:         key,
		ModTime:     time.Unix(1700000000, 0),
		Scripts:     []Script{{Name: "ArtifactInstall_Enter_00", Data: []byte("#!/bin/sh\nexit 0\n")}},
		Payloads: []PayloadSpec{{
			Type:           "single-file",
			Provides:       map[string]string{"rootfs-image.single-file.version": "2"},
			Depends:        map[string][]string{"hw": {"rev-b"}},
			ClearsProvides: []string{"rootfs-image.single-file.*"},
			MetaData:       []byte(`{"dest_dir":"/opt/app"}`),
			Files: []Source{
				memSource("a.txt", []byte("hello\n")),
				memSource("b.bin", bytes.Repeat([]byte{0, 1, 2, 3, 250}, 3000)),
			},
		}},
	}
}

// writeArtifact writes spec into memory.
func writeArtifact(t testing.TB, spec *Spec) []byte {
	t.Helper()
	if spec.TempDir == "" {
		spec.TempDir = t.TempDir()
	}
	var b bytes.Buffer
	if err := Write(&b, spec); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes()
}

// member is one member of an outer (or inner) tar.
type member struct {
	name string
	data []byte
}

// splitTar returns the members of a tar.
func splitTar(t testing.TB, b []byte) []member {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var ms []member
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatalf("split tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("split tar: %v", err)
		}
		ms = append(ms, member{h.Name, data})
	}
}

// joinTar writes members as a tar.
func joinTar(t testing.TB, ms []member) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.name, Size: int64(len(m.data)), Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// find returns the index of the member called name.
func find(t testing.TB, ms []member, name string) int {
	t.Helper()
	for i, m := range ms {
		if m.name == name {
			return i
		}
	}
	t.Fatalf("no member %q", name)
	return -1
}

// resign replaces manifest.sig with a signature of the current manifest.
func resign(t testing.TB, ms []member, key crypto.Signer) []member {
	t.Helper()
	sig, err := Sign(key, ms[find(t, ms, memberManifest)].data)
	if err != nil {
		t.Fatal(err)
	}
	ms[find(t, ms, memberSignature)].data = sig
	return ms
}

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
