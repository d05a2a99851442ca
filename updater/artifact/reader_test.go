package artifact

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestRoundTrip writes Artifacts with every compression and signature kind
// and reads them back: header fields and payload bytes survive.
func TestRoundTrip(t *testing.T) {
	keys := testKeys()
	signers := []struct {
		name string
		key  crypto.Signer
	}{{"unsigned", nil}, {"rsa", keys.rsa}, {"ecdsa", keys.ec}}
	for _, c := range []Compression{Gzip, None, XZ, Zstd} {
		for _, s := range signers {
			t.Run(c.String()+"/"+s.name, func(t *testing.T) {
				spec := testSpec(c, s.key)
				b := writeArtifact(t, spec)
				var opts Options
				wantSig := Unsigned
				if s.key != nil {
					opts.Keys = []crypto.PublicKey{keys.rsa2.Public(), s.key.Public()}
					wantSig = SignedVerified
				}
				rec := newRecorder()
				h, err := Read(bytes.NewReader(b), opts, nil, rec)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if h.Signature != wantSig {
					t.Errorf("Signature = %v, want %v", h.Signature, wantSig)
				}
				if s.key != nil && h.SignatureKey != 1 {
					t.Errorf("SignatureKey = %d, want 1 (the second key)", h.SignatureKey)
				}
				if want := "header.tar" + c.Suffix(); h.HeaderMember != want {
					t.Errorf("HeaderMember = %q, want %q", h.HeaderMember, want)
				}
				got := summarize(h)
				want := headerSummary{
					Name: "app-v2", Group: "prod",
					Depends: Depends{DeviceTypes: []string{"edge-1", "edge-2"}, ArtifactNames: []string{"app-v1"}},
					Scripts: []string{"ArtifactInstall_Enter_00"},
					Payloads: []payloadSummary{{
						Type:           "single-file",
						Provides:       map[string]string{"rootfs-image.single-file.version": "2"},
						Depends:        map[string][]string{"hw": {"rev-b"}},
						ClearsProvides: []string{"rootfs-image.single-file.*"},
						MetaData:       `{"dest_dir":"/opt/app"}`,
					}},
				}
				if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("header (-want +got):\n%s", d)
				}
				wantFiles := map[string][]byte{
					"data/0000/a.txt": []byte("hello\n"),
					"data/0000/b.bin": bytes.Repeat([]byte{0, 1, 2, 3, 250}, 3000),
				}
				if d := cmp.Diff(wantFiles, rec.stored); d != "" {
					t.Errorf("stored (-want +got):\n%s", d)
				}
				if d := cmp.Diff([]string{"data/0000/a.txt", "data/0000/b.bin"}, rec.verified); d != "" {
					t.Errorf("verified (-want +got):\n%s", d)
				}
			})
		}
	}
}

// headerSummary is the comparable part of a Header.
type headerSummary struct {
	Name, Group string
	Depends     Depends
	Scripts     []string
	Payloads    []payloadSummary
}

type payloadSummary struct {
	Type           string
	Provides       map[string]string
	Depends        map[string][]string
	ClearsProvides []string
	MetaData       string
	AugmentType    string
}

func summarize(h *Header) headerSummary {
	s := headerSummary{Name: h.Name, Group: h.Group, Depends: h.Depends}
	for _, sc := range h.Scripts {
		s.Scripts = append(s.Scripts, sc.Name)
	}
	for _, p := range h.Payloads {
		ps := payloadSummary{Type: p.Type, Provides: p.Provides, Depends: p.Depends, ClearsProvides: p.ClearsProvides, MetaData: string(p.MetaData)}
		if p.Augment != nil {
			ps.AugmentType = p.Augment.Type
		}
		s.Payloads = append(s.Payloads, ps)
	}
	return s
}

// TestBootstrapAndMultiPayload covers a null-type payload without files
// and an Artifact with two payloads.
func TestBootstrapAndMultiPayload(t *testing.T) {
	spec := &Spec{
		Name: "boot-1", Depends: Depends{DeviceTypes: []string{"edge-1"}}, Compression: None,
		Payloads: []PayloadSpec{
			{Provides: map[string]string{"rootfs-image.version": "boot-1"}},
			{Type: "single-file", ClearsProvides: []string{}, Files: []Source{memSource("x", []byte("x"))}},
		},
	}
	rec := newRecorder()
	h, err := Read(bytes.NewReader(writeArtifact(t, spec)), Options{}, nil, rec)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got := []string{h.Payloads[0].Type, h.Payloads[1].Type}; !cmp.Equal(got, []string{"", "single-file"}) {
		t.Errorf("types = %q", got)
	}
	if h.Payloads[0].ClearsProvides != nil || h.Payloads[1].ClearsProvides == nil {
		t.Errorf("ClearsProvides = %#v, %#v; want nil (absent) and empty (present)", h.Payloads[0].ClearsProvides, h.Payloads[1].ClearsProvides)
	}
	if d := cmp.Diff([]string{"data/0001/x"}, rec.verified); d != "" {
		t.Errorf("verified (-want +got):\n%s", d)
	}
}

// TestSignedWithoutKeys: a signed Artifact read without keys is accepted
// and reported as not verified.
func TestSignedWithoutKeys(t *testing.T) {
	b := writeArtifact(t, testSpec(Gzip, testKeys().ec))
	h, err := Read(bytes.NewReader(b), Options{}, nil, Discard)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if h.Signature != SignedUnverified || h.SignatureKey != -1 {
		t.Errorf("Signature = %v (key %d), want %v", h.Signature, h.SignatureKey, SignedUnverified)
	}
}

// misbehaving installers: the reader decides from the stream, not from what
// Store returns.
type stopEarly struct{ recorder }

func (s *stopEarly) Store(f *File, r io.Reader) error {
	_, err := io.ReadFull(r, make([]byte, 3))
	return err
}

type ignoreErrors struct{ recorder }

func (s *ignoreErrors) Store(f *File, r io.Reader) error {
	io.Copy(io.Discard, r)
	return nil // the checksum error is dropped on purpose
}

type failing struct{ recorder }

func (s *failing) Store(*File, io.Reader) error { return errors.New("disk full") }

func TestInstallerMisbehaviour(t *testing.T) {
	good := writeArtifact(t, testSpec(None, nil))
	bad := tamperPayload(t, good)
	tests := []struct {
		name    string
		art     []byte
		inst    Installer
		wantErr string
		wantIs  error
	}{
		{"stops reading early", good, &stopEarly{}, "stopped after 3 of 6 bytes", nil},
		{"ignores checksum error", bad, &ignoreErrors{}, "checksum mismatch", ErrChecksum},
		{"fails", good, &failing{}, "disk full", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.art), Options{}, nil, tt.inst)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Read error = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
		})
	}
}

// TestReaderCallOrder: Payloads needs Header first, runs once, and a
// failed reader keeps failing.
func TestReaderCallOrder(t *testing.T) {
	b := writeArtifact(t, testSpec(Gzip, nil))
	r := NewReader(bytes.NewReader(b), Options{})
	if err := r.Payloads(Discard); err == nil {
		t.Error("Payloads before Header: no error")
	}
	h1, err := r.Header()
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := r.Header(); h1 != h2 {
		t.Error("second Header call returned another header")
	}
	if err := r.Payloads(Discard); err != nil {
		t.Fatal(err)
	}
	if err := r.Payloads(Discard); err == nil {
		t.Error("second Payloads call: no error")
	}

	r = NewReader(strings.NewReader("not a tar"), Options{})
	_, err1 := r.Header()
	err2 := r.Payloads(Discard)
	if err1 == nil || err2 != err1 {
		t.Errorf("Header error %v, then Payloads error %v; want the same error", err1, err2)
	}
}

// tamperPayload flips the last byte of a.txt inside an uncompressed data
// member.
func tamperPayload(t *testing.T, art []byte) []byte {
	t.Helper()
	i := bytes.Index(art, []byte("hello\n"))
	if i < 0 {
		t.Fatal("payload bytes not found; is the artifact uncompressed?")
	}
	out := bytes.Clone(art)
	out[i+4] ^= 0x20
	return out
}

// TestRejections feeds broken and tampered Artifacts. Each must fail, and
// the installer must never have been told that any file is verified; where
// the failure belongs before the payload, nothing may have been stored.
func TestRejections(t *testing.T) {
	keys := testKeys()
	ecPub := []crypto.PublicKey{keys.ec.Public()}
	signed := writeArtifact(t, testSpec(None, keys.ec))
	signedGz := writeArtifact(t, testSpec(Gzip, keys.ec))
	unsigned := writeArtifact(t, testSpec(None, nil))
	edit := func(art []byte, f func(ms []member) []member) []byte {
		return joinTar(t, f(splitTar(t, art)))
	}
	// dataWith rebuilds data/0000.tar of an uncompressed Artifact.
	dataWith := func(f func(files []member) []member) func(ms []member) []member {
		return func(ms []member) []member {
			i := find(t, ms, "data/0000.tar")
			ms[i].data = joinTar(t, f(splitTar(t, ms[i].data)))
			return ms
		}
	}
	editManifest := func(f func(string) string) func(ms []member) []member {
		return func(ms []member) []member {
			i := find(t, ms, memberManifest)
			ms[i].data = []byte(f(string(ms[i].data)))
			return resign(t, ms, keys.ec)
		}
	}
	swap := func(a, b string) func(ms []member) []member {
		return func(ms []member) []member {
			i, j := find(t, ms, a), find(t, ms, b)
			ms[i], ms[j] = ms[j], ms[i]
			return ms
		}
	}
	wrongDevice := func(h *Header) error { return CheckDepends("edge-9", Provides{ProvidesName: "app-v1"}, h) }

	tests := []struct {
		name        string
		art         []byte
		opts        Options
		accept      func(*Header) error
		wantIs      error
		wantErr     string
		storeAllows bool // the failure can only show during or after the payload
	}{
		{name: "tampered manifest", opts: Options{Keys: ecPub}, wantIs: ErrSignature,
			art: edit(signed, func(ms []member) []member {
				i := find(t, ms, memberManifest)
				ms[i].data = bytes.Replace(ms[i].data, []byte("a.txt"), []byte("c.txt"), 1)
				return ms
			})},
		{name: "tampered payload byte", art: tamperPayload(t, signed), opts: Options{Keys: ecPub},
			wantIs: ErrChecksum, wantErr: "data/0000/a.txt", storeAllows: true},
		{name: "tampered compressed payload", art: func() []byte {
			return edit(signedGz, func(ms []member) []member {
				i := find(t, ms, "data/0000.tar.gz")
				ms[i].data[len(ms[i].data)/2] ^= 0xff
				return ms
			})
		}(), opts: Options{Keys: ecPub}, storeAllows: true},
		{name: "tampered header", wantIs: ErrChecksum, wantErr: "header.tar",
			art: edit(unsigned, func(ms []member) []member {
				i := find(t, ms, "header.tar")
				ms[i].data = bytes.Replace(ms[i].data, []byte("edge-2"), []byte("edge-3"), 1)
				return ms
			})},
		{name: "tampered version", wantIs: ErrChecksum, wantErr: "version",
			art: edit(unsigned, func(ms []member) []member {
				ms[0].data = []byte(`{"format":"mender", "version":3}`)
				return ms
			})},
		{name: "wrong key", art: signed, opts: Options{Keys: []crypto.PublicKey{keys.ec2.Public(), keys.rsa.Public()}}, wantIs: ErrSignature},
		{name: "wrong device type", art: signed, opts: Options{Keys: ecPub}, accept: wrongDevice, wantIs: ErrDepends, wantErr: `device type "edge-9"`},
		{name: "unsigned when required", art: unsigned, opts: Options{Keys: ecPub}, wantIs: ErrUnsigned},
		{name: "unlisted file", opts: Options{Keys: ecPub}, wantIs: ErrFormat, wantErr: `"data/0000/evil.sh" is not listed`, storeAllows: true,
			art: edit(signed, dataWith(func(fs []member) []member { return append(fs, member{"evil.sh", []byte("rm -rf /")}) }))},
		{name: "unlisted file first", opts: Options{Keys: ecPub}, wantIs: ErrFormat, wantErr: "is not listed",
			art: edit(signed, dataWith(func(fs []member) []member { return append([]member{{"evil.sh", nil}}, fs...) }))},
		{name: "missing manifest entry", opts: Options{Keys: ecPub}, wantIs: ErrFormat, storeAllows: true,
			wantErr: `manifest lists "data/0000/b.bin" but the artifact does not contain it`,
			art:     edit(signed, dataWith(func(fs []member) []member { return fs[:1] }))},
		{name: "manifest lists extra file", opts: Options{Keys: ecPub}, wantIs: ErrFormat, storeAllows: true,
			wantErr: `"data/0000/c.txt" but the artifact does not contain it`,
			art: edit(signed, editManifest(func(m string) string {
				return strings.Repeat("0", 64) + "  data/0000/c.txt\n" + m
			}))},
		{name: "manifest lists foreign path", opts: Options{Keys: ecPub}, wantIs: ErrFormat, wantErr: `"scripts/x"`,
			art: edit(signed, editManifest(func(m string) string { return m + strings.Repeat("0", 64) + "  scripts/x\n" }))},
		{name: "file twice", opts: Options{Keys: ecPub}, wantIs: ErrFormat, wantErr: "appears twice", storeAllows: true,
			art: edit(signed, dataWith(func(fs []member) []member { return append(fs, fs[0]) }))},
		{name: "path in data", wantIs: ErrFormat, wantErr: "invalid payload file name",
			art: edit(unsigned, dataWith(func(fs []member) []member { return append([]member{{"../a.txt", nil}}, fs...) }))},
		{name: "header before manifest", art: edit(signed, swap(memberManifest, "header.tar")), wantIs: ErrFormat, wantErr: `unexpected member "header.tar", want "manifest"`},
		{name: "signature after header", art: edit(signed, swap(memberSignature, "header.tar")), opts: Options{Keys: ecPub}, wantIs: ErrUnsigned},
		{name: "signature after header, no keys", art: edit(signed, swap(memberSignature, "header.tar")), wantIs: ErrFormat, wantErr: `unexpected member "manifest.sig"`},
		{name: "data before header", art: edit(unsigned, swap("data/0000.tar", "header.tar")), wantIs: ErrFormat},
		{name: "version not first", art: edit(unsigned, swap(memberVersion, memberManifest)), wantIs: ErrFormat, wantErr: `want "version"`},
		{name: "member after data", wantIs: ErrFormat, wantErr: `unexpected member "extra" after the last data member`, storeAllows: true,
			art: edit(signed, func(ms []member) []member { return append(ms, member{"extra", nil}) })},
		{name: "second data member", wantIs: ErrFormat, wantErr: `unexpected member "data/0001.tar"`, storeAllows: true,
			art: edit(unsigned, func(ms []member) []member { return append(ms, member{"data/0001.tar", ms[len(ms)-1].data}) })},
		{name: "data member missing", wantIs: ErrFormat, wantErr: "missing member data/0000",
			art: edit(unsigned, func(ms []member) []member { return ms[:len(ms)-1] })},
		{name: "header-augment without manifest-augment", wantIs: ErrFormat, wantErr: `"header-augment.tar"`,
			art: edit(unsigned, func(ms []member) []member {
				i := find(t, ms, "header.tar")
				return append(ms[:i+1], append([]member{{"header-augment.tar", ms[i].data}}, ms[i+1:]...)...)
			})},
		{name: "version 2", wantIs: ErrFormat, wantErr: "only version 3",
			art: edit(unsigned, func(ms []member) []member {
				ms[0].data = []byte(`{"format":"mender","version":2}`)
				return ms
			})},
		{name: "unknown version field", wantIs: ErrFormat, wantErr: "unknown field",
			art: edit(unsigned, func(ms []member) []member {
				ms[0].data = []byte(`{"format":"mender","version":3,"x":1}`)
				return ms
			})},
		{name: "not a tar", art: []byte("hello"), wantIs: ErrFormat},
		{name: "empty", art: nil, wantIs: ErrFormat, wantErr: `missing member "version"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			_, err := Read(bytes.NewReader(tt.art), tt.opts, tt.accept, rec)
			if err == nil {
				t.Fatal("Read succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %q", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if len(rec.verified) > 0 {
				t.Errorf("installer was told %q are verified", rec.verified)
			}
			if !tt.storeAllows && len(rec.order) > 0 {
				t.Errorf("installer stored %q before the failure", rec.order)
			}
		})
	}
}

// TestUnsignedRejectedBeforePayload: with keys configured, an unsigned
// Artifact fails before a byte of the data member is read.
func TestUnsignedRejectedBeforePayload(t *testing.T) {
	art := writeArtifact(t, testSpec(None, nil))
	dataAt := int64(bytes.Index(art, []byte("data/0000.tar")))
	src := &countingReader{r: bytes.NewReader(art)}
	r := NewReader(src, Options{Keys: []crypto.PublicKey{testKeys().rsa.Public()}})
	_, err := r.Header()
	if !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Header error = %v, want ErrUnsigned", err)
	}
	if src.n > dataAt {
		t.Errorf("read %d bytes, past the data member header at %d", src.n, dataAt)
	}
}

// TestTruncated cuts an Artifact at many points up to the end of its last
// member's content: every cut fails, and nothing is ever declared verified.
// (A cut in the padding or zero blocks after the last member loses nothing
// and is accepted, as by archive/tar.)
func TestTruncated(t *testing.T) {
	for _, c := range []Compression{None, Gzip} {
		art := writeArtifact(t, testSpec(c, nil))
		ms := splitTar(t, art)
		last := ms[len(ms)-1]
		end := bytes.Index(art, []byte(last.name)) + 512 + len(last.data)
		cuts := []int{end - 1, end - 512}
		for cut := 0; cut < end; cut += 37 {
			cuts = append(cuts, cut)
		}
		for _, cut := range cuts {
			rec := newRecorder()
			_, err := Read(bytes.NewReader(art[:cut]), Options{}, nil, rec)
			if err == nil {
				t.Fatalf("%s: cut at %d of %d: Read succeeded", c, cut, len(art))
			}
			if len(rec.verified) > 0 {
				t.Fatalf("%s: cut at %d: %q declared verified", c, cut, rec.verified)
			}
		}
	}
}

// TestAugmented: augmented files and headers are accepted only for the
// payload types the consumer declares, and are marked as such.
func TestAugmented(t *testing.T) {
	art := augmentedArtifact(t)
	if _, err := Read(bytes.NewReader(art), Options{}, nil, Discard); err == nil || !strings.Contains(err.Error(), "augmented artifacts are not permitted") {
		t.Fatalf("without AugmentTypes: error = %v, want refusal", err)
	}
	rec := newRecorder()
	h, err := Read(bytes.NewReader(art), Options{AugmentTypes: []string{"delta"}}, nil, rec)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	a := h.Payloads[0].Augment
	if a == nil || a.Type != "delta" || !cmp.Equal(a.Depends, map[string][]string{"base": {"v1"}}) || string(a.MetaData) != `{"x":1}` {
		t.Errorf("Augment = %+v", a)
	}
	if d := cmp.Diff([]string{"data/0000/a.txt", "data/0000/patch"}, rec.verified); d != "" {
		t.Errorf("verified (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"data/0000/patch"}, rec.augmented); d != "" {
		t.Errorf("augmented files (-want +got):\n%s", d)
	}
}

// augmentedArtifact adds manifest-augment, header-augment and an augment
// file to an uncompressed Artifact, as mender-artifact's --augment-* do.
func augmentedArtifact(t *testing.T) []byte {
	t.Helper()
	spec := testSpec(None, nil)
	spec.Payloads[0].Files = spec.Payloads[0].Files[:1]
	ms := splitTar(t, writeArtifact(t, spec))
	augHeader := joinTar(t, []member{
		{"header-info", []byte(`{"payloads":[{"type":"delta"}],"artifact_provides":{"artifact_name":"app-v2"},"artifact_depends":{"device_type":["edge-1"]}}`)},
		{"headers/0000/type-info", []byte(`{"type":"delta","artifact_depends":{"base":"v1"}}`)},
		{"headers/0000/meta-data", []byte(`{"x":1}`)},
	})
	patch := []byte("patch bytes")
	var mb manifestBuilder
	mb.add("data/0000/patch", sha256sum(patch))
	mb.add("header-augment.tar", sha256sum(augHeader))
	d := find(t, ms, "data/0000.tar")
	files := append(splitTar(t, ms[d].data), member{"patch", patch})
	ms[d].data = joinTar(t, files)
	h := find(t, ms, "header.tar")
	out := append([]member{}, ms[:h]...)
	out = append(out, member{memberManifestAugment, mb.bytes()}, ms[h], member{"header-augment.tar", augHeader})
	return joinTar(t, append(out, ms[h+1:]...))
}

// TestRejectAugmentTampering: the augment cannot override signed files or
// provides.
func TestRejectAugmentTampering(t *testing.T) {
	base := augmentedArtifact(t)
	opts := Options{AugmentTypes: []string{"delta", "single-file"}}
	tests := []struct {
		name, wantErr string
		f             func(ms []member) []member
	}{
		{"augment lists a signed file", "which the signed manifest lists too", func(ms []member) []member {
			i := find(t, ms, memberManifestAugment)
			ms[i].data = append(ms[i].data, []byte(fmt.Sprintf("%x  data/0000/a.txt\n", sha256sum([]byte("x"))))...)
			return ms
		}},
		{"augment provides", "may not be augmented", func(ms []member) []member {
			ah := joinTar(t, []member{
				{"header-info", []byte(`{"payloads":[{"type":"delta"}],"artifact_provides":{"artifact_name":"x"},"artifact_depends":{"device_type":["e"]}}`)},
				{"headers/0000/type-info", []byte(`{"type":"delta","artifact_provides":{"rootfs-image.version":"evil"}}`)},
			})
			ms[find(t, ms, "header-augment.tar")].data = ah
			i := find(t, ms, memberManifestAugment)
			ms[i].data = []byte(fmt.Sprintf("%x  header-augment.tar\n%x  data/0000/patch\n", sha256sum(ah), sha256sum([]byte("patch bytes"))))
			return ms
		}},
		{"augment header tampered", "header-augment.tar", func(ms []member) []member {
			i := find(t, ms, "header-augment.tar")
			ms[i].data = bytes.Replace(ms[i].data, []byte(`"v1"`), []byte(`"v9"`), 1)
			return ms
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			art := joinTar(t, tt.f(splitTar(t, base)))
			rec := newRecorder()
			_, err := Read(bytes.NewReader(art), opts, nil, rec)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if len(rec.order) > 0 {
				t.Errorf("stored %q", rec.order)
			}
		})
	}
}

// TestHeaderTarRules covers the header's own layout rules.
func TestHeaderTarRules(t *testing.T) {
	info := `{"payloads":[{"type":"x"}],"artifact_provides":{"artifact_name":"n"},"artifact_depends":{"device_type":["d"]}}`
	ti := `{"type":"x"}`
	tests := []struct {
		name    string
		files   []member
		strict  bool
		wantErr string // empty: accepted
	}{
		{"minimal", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(ti)}}, false, ""},
		{"empty type from mender-artifact 3.9", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(`{"type":""}`)}}, false, ""},
		{"empty type, strict", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(`{"type":""}`)}}, true, "does not match"},
		{"type mismatch", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(`{"type":"y"}`)}}, false, `type "y" does not match`},
		{"header-info not first", []member{{"headers/0000/type-info", []byte(ti)}, {"header-info", []byte(info)}}, false, "header-info must come first"},
		{"script after headers", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(ti)}, {"scripts/ArtifactInstall_Enter_00", nil}}, false, "scripts must come before"},
		{"v2 files entry", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(ti)}, {"headers/0000/files", nil}}, false, "not part of a version 3 header"},
		{"traversal", []member{{"header-info", []byte(info)}, {"../etc/passwd", nil}}, false, "not part of a version 3 header"},
		{"meta-data first", []member{{"header-info", []byte(info)}, {"headers/0000/meta-data", []byte("{}")}}, false, "must follow"},
		{"meta-data not an object", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(ti)}, {"headers/0000/meta-data", []byte("[1]")}}, false, "want a JSON object"},
		{"missing type-info", []member{{"header-info", []byte(info)}}, false, "0 type-info files for 1 payloads"},
		{"no device type", []member{{"header-info", []byte(strings.Replace(info, `"d"`, ``, 1))}, {"headers/0000/type-info", []byte(ti)}}, false, "device_type is empty"},
		{"unknown header depends", []member{{"header-info", []byte(strings.Replace(info, `"device_type"`, `"colour":["red"],"device_type"`, 1))}, {"headers/0000/type-info", []byte(ti)}}, false, `unknown artifact_depends key "colour"`},
		{"bad depends value", []member{{"header-info", []byte(info)}, {"headers/0000/type-info", []byte(`{"type":"x","artifact_depends":{"k":1}}`)}}, false, "want a string or a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hf, err := parseHeaderTar(bytes.NewReader(joinTar(t, tt.files)), false)
			if err == nil {
				_, err = buildHeader(hf, tt.strict)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("error = %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrFormat) {
				t.Fatalf("error = %v, want ErrFormat containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestWriterOutput pins what the writer puts in header-info and type-info.
func TestWriterOutput(t *testing.T) {
	ms := splitTar(t, writeArtifact(t, testSpec(None, nil)))
	if got := string(ms[0].data); got != versionBytes {
		t.Errorf("version = %q", got)
	}
	files := splitTar(t, ms[find(t, ms, "header.tar")].data)
	var names []string
	for _, f := range files {
		names = append(names, f.name)
	}
	if d := cmp.Diff([]string{"header-info", "scripts/ArtifactInstall_Enter_00", "headers/0000/type-info", "headers/0000/meta-data"}, names); d != "" {
		t.Errorf("header files (-want +got):\n%s", d)
	}
	wantInfo := `{"payloads":[{"type":"single-file"}],"artifact_provides":{"artifact_name":"app-v2","artifact_group":"prod"},"artifact_depends":{"artifact_name":["app-v1"],"device_type":["edge-1","edge-2"]}}`
	if got := string(files[0].data); got != wantInfo {
		t.Errorf("header-info:\n got %s\nwant %s", got, wantInfo)
	}
	var ti map[string]any
	if err := json.Unmarshal(files[2].data, &ti); err != nil {
		t.Fatal(err)
	}
	wantTI := map[string]any{
		"type":                     "single-file",
		"artifact_depends":         map[string]any{"hw": "rev-b"},
		"artifact_provides":        map[string]any{"rootfs-image.single-file.version": "2"},
		"clears_artifact_provides": []any{"rootfs-image.single-file.*"},
	}
	if d := cmp.Diff(wantTI, ti); d != "" {
		t.Errorf("type-info (-want +got):\n%s", d)
	}
	m, err := ParseManifest(ms[1].data)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"data/0000/a.txt", "data/0000/b.bin", "header.tar", "version"}, m.Names()); d != "" {
		t.Errorf("manifest order (-want +got):\n%s", d)
	}
}

// TestWriteValidate: a bad spec names every problem and writes nothing.
func TestWriteValidate(t *testing.T) {
	spec := &Spec{
		Scripts:  []Script{{Name: "install.sh"}},
		Payloads: []PayloadSpec{{Type: "x", ChecksumProvide: "c", MetaData: []byte("[]"), Files: []Source{{Name: "a/b"}, {Name: "a/b"}}}},
	}
	var out bytes.Buffer
	err := Write(&out, spec)
	if err == nil {
		t.Fatal("Write succeeded")
	}
	for _, want := range []string{"name: required", "device_types", `scripts[0]: "install.sh"`, `files[0]: "a/b"`,
		`files[1]: "a/b" given twice`, "checksum_provide: needs exactly one file", "meta_data: want a JSON object", "no Open function"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if out.Len() > 0 {
		t.Errorf("wrote %d bytes", out.Len())
	}
}

// TestWriteSourceChanged: a source that yields other bytes the second time
// makes Write fail instead of writing an inconsistent Artifact.
func TestWriteSourceChanged(t *testing.T) {
	for _, c := range []Compression{None, Gzip} {
		n := 0
		src := Source{Name: "f", Open: func() (io.ReadCloser, error) {
			n++
			return io.NopCloser(strings.NewReader(fmt.Sprint("content ", n))), nil
		}}
		spec := &Spec{Name: "n", Depends: Depends{DeviceTypes: []string{"d"}}, Compression: c, TempDir: t.TempDir(),
			Payloads: []PayloadSpec{{Type: "x", Files: []Source{src}}}}
		if err := Write(io.Discard, spec); err == nil || !strings.Contains(err.Error(), "changed while") {
			t.Errorf("%s: error = %v, want 'changed while'", c, err)
		}
		if left, _ := os.ReadDir(spec.TempDir); len(left) > 0 {
			t.Errorf("%s: temp files left: %v", c, left)
		}
	}
}
