package artifact

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"strings"
)

// Options configure a Reader. The zero value accepts unsigned and signed
// Artifacts (the latter reported as SignedUnverified) and refuses augmented
// ones.
type Options struct {
	// Keys verify manifest.sig (RSA or ECDSA P-256; see ParsePublicKeyPEM).
	// When not empty the Artifact must be signed and verify with at least
	// one of them: an unsigned Artifact is refused as soon as the reader
	// sees there is no signature, before the header is read.
	Keys []crypto.PublicKey
	// AugmentTypes are the payload types whose installer accepts augmented
	// Artifacts (Mender's SupportsAugmentedArtifacts). An Artifact with a
	// header-augment for any other type is refused. Empty: none.
	AugmentTypes []string
	// AllAugments accepts augmented Artifacts whatever the type. It is for
	// tools that only inspect Artifacts (edgefort artifact read); an
	// installer must use AugmentTypes.
	AllAugments bool
	// StrictTypeInfo refuses a type-info whose type is "" while header-info
	// names one. Off by default, since mender-artifact 3.9 writes exactly
	// that for rootfs images.
	StrictTypeInfo bool
}

// Reader reads one Artifact from a stream, front to back, once: Header
// first, then Payloads. It is not safe for concurrent use.
type Reader struct {
	opts Options
	tr   *tar.Reader
	hdr  *Header
	err  error // sticky: once failed, every call returns it

	versionSum [32]byte
	buf        []byte   // ring[0], for draining members to their end
	ring       [][]byte // pipelineBuffers × copyBufferSize, shared by file streams
	sha        hash.Hash
	headerDone bool
	dataDone   bool
}

// NewReader returns a Reader of the Artifact in src. It reads nothing yet.
// src is read sequentially and never seeked; pass the download stream or
// file directly (large reads go straight through to it).
func NewReader(src io.Reader, opts Options) *Reader {
	return &Reader{opts: opts, tr: tar.NewReader(src)}
}

// Read reads a whole Artifact: Header, then accept (when not nil; its
// error aborts before any payload byte is read, e.g. a failed
// CheckDepends), then Payloads into inst.
func Read(src io.Reader, opts Options, accept func(*Header) error, inst Installer) (*Header, error) {
	r := NewReader(src, opts)
	h, err := r.Header()
	if err != nil {
		return h, err
	}
	if accept != nil {
		if err := accept(h); err != nil {
			return h, err
		}
	}
	return h, r.Payloads(inst)
}

// Header reads and verifies version, manifest, manifest.sig,
// manifest-augment, header and header-augment, and returns the header. It
// reads no payload data. Calling it again returns the same result.
func (r *Reader) Header() (*Header, error) {
	if r.headerDone || r.err != nil {
		return r.hdr, r.err
	}
	r.headerDone = true
	h, err := r.readHeader()
	if err != nil {
		r.err = fmt.Errorf("artifact: %w", err)
		return nil, r.err
	}
	r.hdr = h
	return h, nil
}

func (r *Reader) readHeader() (*Header, error) {
	th, err := r.expect(memberVersion)
	if err != nil {
		return nil, err
	}
	version, err := readMember(r.tr, th, maxVersionSize)
	if err != nil {
		return nil, err
	}
	if err := parseVersion(version); err != nil {
		return nil, err
	}
	r.versionSum = sha256.Sum256(version)

	if th, err = r.expect(memberManifest); err != nil {
		return nil, err
	}
	raw, err := readMember(r.tr, th, maxManifestSize)
	if err != nil {
		return nil, err
	}
	manifest, err := ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	if err := checkSum(manifest, memberVersion, r.versionSum); err != nil {
		return nil, err
	}

	th, err = r.nextWant("header.tar[.gz|.xz|.zst]")
	if err != nil {
		return nil, err
	}
	status, keyIndex := Unsigned, -1
	if th.Name == memberSignature {
		sig, err := readMember(r.tr, th, maxSignatureSize)
		if err != nil {
			return nil, err
		}
		status = SignedUnverified
		if len(r.opts.Keys) > 0 {
			if keyIndex, err = VerifySignature(raw, sig, r.opts.Keys); err != nil {
				return nil, err
			}
			status = SignedVerified
		}
		if th, err = r.nextWant("header.tar[.gz|.xz|.zst]"); err != nil {
			return nil, err
		}
	} else if len(r.opts.Keys) > 0 {
		return nil, fmt.Errorf("%w: verification keys are configured but there is no manifest.sig (next member: %q)", ErrUnsigned, th.Name)
	}

	var augment *Manifest
	if th.Name == memberManifestAugment {
		b, err := readMember(r.tr, th, maxManifestSize)
		if err != nil {
			return nil, err
		}
		if augment, err = ParseManifest(b); err != nil {
			return nil, fmt.Errorf("manifest-augment: %w", err)
		}
		if th, err = r.nextWant("header.tar[.gz|.xz|.zst]"); err != nil {
			return nil, err
		}
	}

	comp, ok := headerMember(th.Name)
	if !ok {
		return nil, formatErr("unexpected member %q, want header.tar[.gz|.xz|.zst]", th.Name)
	}
	hf, err := r.readHeaderMember(th, manifest, comp, false)
	if err != nil {
		return nil, err
	}
	h, err := buildHeader(hf, r.opts.StrictTypeInfo)
	if err != nil {
		return nil, err
	}
	h.Manifest, h.AugmentManifest, h.HeaderMember = manifest, augment, th.Name
	h.Signature, h.SignatureKey = status, keyIndex

	if augment != nil {
		name := headerAugmentBase + comp.Suffix()
		if th, err = r.expect(name); err != nil {
			return nil, err
		}
		ahf, err := r.readHeaderMember(th, augment, comp, true)
		if err != nil {
			return nil, err
		}
		if err := applyAugment(h, ahf); err != nil {
			return nil, err
		}
		if err := checkAugmentPermitted(h, r.opts.AugmentTypes, r.opts.AllAugments); err != nil {
			return nil, err
		}
	}
	if err := checkManifestPaths(h); err != nil {
		return nil, err
	}
	return h, nil
}

// readHeaderMember reads a header or header-augment member whole (it is
// capped), checks its checksum as stored, and only then decompresses and
// parses it.
func (r *Reader) readHeaderMember(th *tar.Header, m *Manifest, comp Compression, augment bool) (*headerFiles, error) {
	data, err := readMember(r.tr, th, maxHeaderSize)
	if err != nil {
		return nil, err
	}
	if err := checkSum(m, th.Name, sha256.Sum256(data)); err != nil {
		return nil, err
	}
	zr, err := comp.newReader(bytes.NewReader(data))
	if err != nil {
		return nil, formatErr("%s: %v", th.Name, err)
	}
	defer zr.Close()
	hf, err := parseHeaderTar(zr, augment)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", th.Name, err)
	}
	// As in a data member, only zero padding may follow the tar, and
	// reading it to the end runs the decompressor's own check.
	lim := &dataLimit{r: zr}
	lim.allow(maxTarPadding, "after the end of its tar (only zero padding may follow)")
	if err := readZeros(lim, make([]byte, 32<<10)); err != nil {
		return nil, formatErr("%s: %v", th.Name, err)
	}
	return hf, nil
}

// checkManifestPaths refuses manifest entries that can never be matched:
// every path must be version, the header member, or a payload file of an
// existing payload. manifest-augment may list header-augment and payload
// files that the signed manifest does not.
func checkManifestPaths(h *Header) error {
	for _, name := range h.Manifest.Names() {
		if name == memberVersion || name == h.HeaderMember || isPayloadPath(name, len(h.Payloads)) {
			continue
		}
		return formatErr("manifest lists %q, which is not part of a version 3 artifact with %d payload(s)", name, len(h.Payloads))
	}
	if h.AugmentManifest == nil {
		return nil
	}
	augHeader := headerAugmentBase + strings.TrimPrefix(h.HeaderMember, headerBase)
	for _, name := range h.AugmentManifest.Names() {
		if _, signed := h.Manifest.Sum(name); signed {
			return formatErr("manifest-augment lists %q, which the signed manifest lists too", name)
		}
		if name == augHeader || isPayloadPath(name, len(h.Payloads)) {
			continue
		}
		return formatErr("manifest-augment lists %q, which is not an augmentable file", name)
	}
	return nil
}

func isPayloadPath(name string, payloads int) bool {
	rest, ok := strings.CutPrefix(name, dataPrefix)
	if !ok || len(rest) < 6 || rest[4] != '/' || !isDigits(rest[:4]) {
		return false
	}
	i := int(rest[0]-'0')*1000 + int(rest[1]-'0')*100 + int(rest[2]-'0')*10 + int(rest[3]-'0')
	return i < payloads && ValidFileName(rest[5:])
}

// Payloads streams every payload file to inst (see Installer), then checks
// that nothing follows the data and every manifest entry was seen, and only
// then calls inst.Verified for each file. Header must have succeeded.
func (r *Reader) Payloads(inst Installer) error {
	if r.err != nil {
		return r.err
	}
	if !r.headerDone || r.hdr == nil {
		return errors.New("artifact: Payloads called before Header")
	}
	if r.dataDone {
		return errors.New("artifact: Payloads called twice")
	}
	r.dataDone = true
	if err := r.readPayloads(inst); err != nil {
		r.err = fmt.Errorf("artifact: %w", err)
		return r.err
	}
	return nil
}

func (r *Reader) readPayloads(inst Installer) error {
	r.ring = make([][]byte, pipelineBuffers)
	for i := range r.ring {
		r.ring[i] = make([]byte, copyBufferSize)
	}
	// Members are drained to their end only between files, never while a
	// file's WriteTo has the ring in use.
	r.buf = r.ring[0]
	r.sha = sha256.New()
	seen := make(map[string]bool)
	var stored []*File
	for i := range r.hdr.Payloads {
		th, err := r.next()
		if err == io.EOF {
			return formatErr("missing member data/%04d.tar[...] (truncated artifact?)", i)
		}
		if err != nil {
			return err
		}
		index, comp, ok := dataMember(th.Name)
		if !ok || index != i {
			return formatErr("unexpected member %q, want data/%04d.tar[.gz|.xz|.zst]", th.Name, i)
		}
		files, err := r.readDataMember(th, comp, &r.hdr.Payloads[i], inst, seen)
		stored = append(stored, files...)
		if err != nil {
			return err
		}
	}
	if th, err := r.next(); err != io.EOF {
		if err != nil {
			return err
		}
		return formatErr("unexpected member %q after the last data member", th.Name)
	}
	for _, m := range []*Manifest{r.hdr.Manifest, r.hdr.AugmentManifest} {
		if m == nil {
			continue
		}
		for _, name := range m.names {
			if strings.HasPrefix(name, dataPrefix) && !seen[name] {
				return formatErr("manifest lists %q but the artifact does not contain it", name)
			}
		}
	}
	for _, f := range stored {
		if err := inst.Verified(f); err != nil {
			return fmt.Errorf("installer: %s: %w", f.Path, err)
		}
	}
	return nil
}

// readDataMember streams the files of one data member to inst and returns
// those it stored. What the member decompresses to is bounded by what its
// tar declares (see dataLimit): the signature covers the files' checksums,
// not the compressed bytes, so anything else in the member is unsigned.
func (r *Reader) readDataMember(th *tar.Header, comp Compression, p *Payload, inst Installer, seen map[string]bool) ([]*File, error) {
	zr, err := comp.newReader(r.tr)
	if err != nil {
		return nil, formatErr("%s: %v", th.Name, err)
	}
	defer zr.Close()
	lim := &dataLimit{r: zr}
	dr := tar.NewReader(lim)
	var stored []*File
	for {
		lim.allow(maxTarHeaders, "for the tar header of the next entry")
		fh, err := dr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return stored, formatErr("%s: %v", th.Name, err)
		}
		lim.allow(fh.Size, fmt.Sprintf("for entry %q of %d bytes", fh.Name, fh.Size))
		f, err := r.dataFile(p, fh, seen)
		if err != nil {
			return stored, fmt.Errorf("%s: %w", th.Name, err)
		}
		if err := r.store(inst, f, dr); err != nil {
			return stored, err
		}
		stored = append(stored, f)
	}
	// Only the zero padding a tar writer leaves may follow the tar's end,
	// and the compressed stream must end with it (its integrity check
	// runs on the way).
	lim.allow(maxTarPadding, "after the end of its tar (only zero padding may follow)")
	if err := readZeros(lim, r.buf); err != nil {
		return stored, formatErr("%s: %v", th.Name, err)
	}
	return stored, nil
}

// dataLimit counts the bytes a data member decompresses to and fails a read
// past the limit, which the reader raises step by step by what the inner
// tar declares: a bounded allowance for each entry's headers, the entry's
// size, and bounded padding after the end.
type dataLimit struct {
	r     io.Reader
	n     int64
	limit int64
	extra int64  // the last allowance, for the error
	what  string // what it was for
}

// allow lets n more bytes through, for what.
func (l *dataLimit) allow(n int64, what string) {
	l.limit, l.extra, l.what = l.n+min(n, math.MaxInt64-l.n), n, what
}

func (l *dataLimit) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		// One byte past the allowance tells a stream that ends exactly
		// there from one that goes on.
		var one [1]byte
		if n, err := l.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("more than %d decompressed bytes %s, the limit", l.extra, l.what)
	}
	if int64(len(p)) > l.limit-l.n {
		p = p[:l.limit-l.n]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// readZeros reads r to its end and refuses any byte that is not zero.
func readZeros(r io.Reader, buf []byte) error {
	var off int64
	for {
		n, err := r.Read(buf)
		for i, c := range buf[:n] {
			if c != 0 {
				return fmt.Errorf("non-zero data at byte %d after the end of its tar", off+int64(i))
			}
		}
		off += int64(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// dataFile checks one data tar entry against the manifests.
func (r *Reader) dataFile(p *Payload, fh *tar.Header, seen map[string]bool) (*File, error) {
	if fh.Typeflag != tar.TypeReg {
		return nil, formatErr("entry %q: not a regular file", fh.Name)
	}
	if !ValidFileName(fh.Name) {
		return nil, formatErr("entry %q: invalid payload file name", fh.Name)
	}
	for k := range fh.PAXRecords {
		// A sparse file's holes read as zeros that no compressed byte
		// stands for, so they would escape dataLimit; no Artifact tool
		// writes one.
		if strings.HasPrefix(k, "GNU.sparse.") {
			return nil, formatErr("entry %q: sparse files are not supported", fh.Name)
		}
	}
	f := &File{Payload: p.Index, Type: p.EffectiveType(), Name: fh.Name, Path: dataFilePath(p.Index, fh.Name),
		Size: fh.Size, ModTime: fh.ModTime}
	if seen[f.Path] {
		return nil, formatErr("entry %q: appears twice", fh.Name)
	}
	seen[f.Path] = true
	var ok bool
	if f.Checksum, ok = r.hdr.Manifest.Sum(f.Path); ok {
		return f, nil
	}
	if r.hdr.AugmentManifest != nil && p.Augment != nil {
		if f.Checksum, ok = r.hdr.AugmentManifest.Sum(f.Path); ok {
			f.Augmented = true
			return f, nil
		}
	}
	return nil, formatErr("file %q is not listed in the manifest", f.Path)
}

// store hands one file to the installer through a hashing stream and
// decides the outcome from the stream, whatever Store returned.
func (r *Reader) store(inst Installer, f *File, src io.Reader) error {
	r.sha.Reset()
	s := &fileStream{src: src, left: f.Size, h: r.sha, want: f.Checksum, path: f.Path, ring: r.ring}
	serr := inst.Store(f, s)
	switch {
	case s.err != nil && serr != nil && errors.Is(serr, s.err):
		// The installer passed the stream's error on with what it means
		// for what it stored (the rootfs installer: a partition left not
		// bootable): keep both.
		return fmt.Errorf("installer: %s: %w", f.Path, serr)
	case s.err != nil:
		return s.err
	case serr != nil:
		return fmt.Errorf("installer: %s: %w", f.Path, serr)
	case !s.done:
		return fmt.Errorf("installer: %s: stopped after %d of %d bytes", f.Path, f.Size-s.left, f.Size)
	}
	return nil
}

// next reads the next outer member header; it must be a regular file.
func (r *Reader) next() (*tar.Header, error) {
	th, err := r.tr.Next()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, formatErr("outer tar: %v", err)
	}
	if th.Typeflag != tar.TypeReg {
		return nil, formatErr("member %q: not a regular file", th.Name)
	}
	return th, nil
}

// nextWant is next, for a member that must exist: io.EOF becomes a format
// error naming what is missing.
func (r *Reader) nextWant(what string) (*tar.Header, error) {
	th, err := r.next()
	if err == io.EOF {
		return nil, formatErr("missing member %s (truncated artifact?)", what)
	}
	return th, err
}

// expect reads the next member, which must be called name.
func (r *Reader) expect(name string) (*tar.Header, error) {
	th, err := r.next()
	if err == io.EOF {
		return nil, formatErr("missing member %q (truncated artifact?)", name)
	}
	if err != nil {
		return nil, err
	}
	if th.Name != name {
		return nil, formatErr("unexpected member %q, want %q", th.Name, name)
	}
	return th, nil
}

// readMember reads a small member whole.
func readMember(tr *tar.Reader, th *tar.Header, max int64) ([]byte, error) {
	if th.Size > max {
		return nil, formatErr("member %q: %d bytes, more than the %d allowed", th.Name, th.Size, max)
	}
	data := make([]byte, th.Size)
	if _, err := io.ReadFull(tr, data); err != nil {
		return nil, formatErr("member %q: %v", th.Name, err)
	}
	return data, nil
}

// parseVersion accepts {"format":"mender","version":3} and nothing else.
func parseVersion(b []byte) error {
	var v struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return formatErr("version: %v", err)
	}
	if dec.More() {
		return formatErr("version: trailing data")
	}
	if v.Format != "mender" {
		return formatErr("version: format %q, want \"mender\"", v.Format)
	}
	if v.Version != 3 {
		return formatErr("version: %d, only version 3 is supported", v.Version)
	}
	return nil
}

// checkSum compares a computed checksum with the manifest's.
func checkSum(m *Manifest, name string, got [32]byte) error {
	want, ok := m.Sum(name)
	if !ok {
		return formatErr("manifest does not list %q", name)
	}
	if got != want {
		return fmt.Errorf("%w: %s: manifest has %x, content has %x", ErrChecksum, name, want, got)
	}
	return nil
}
