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
	"maps"
	"os"
	"slices"
	"time"
)

// Spec describes an Artifact to write.
type Spec struct {
	// Name is the artifact_name the Artifact provides. Required.
	Name string
	// Group is the artifact_group it provides; empty for none.
	Group string
	// Depends is header-info's artifact_depends. DeviceTypes is required.
	Depends Depends
	// Payloads, one or more. mender-artifact writes exactly one.
	Payloads []PayloadSpec
	// Scripts are state scripts; each Name must satisfy ValidScriptName.
	Scripts []Script
	// Compression of the header and data members. Zero value: Gzip.
	Compression Compression
	// Key signs the manifest when not nil (RSA or ECDSA P-256).
	Key crypto.Signer
	// ModTime stamps the header and data members. Zero: now.
	ModTime time.Time
	// TempDir holds compressed data members while they are built, since
	// the outer tar needs their size first. Empty: os.TempDir(). Unused
	// with Compression None, which streams straight through.
	TempDir string
}

// PayloadSpec describes one payload.
type PayloadSpec struct {
	// Type is the update type: an update module name or "rootfs-image".
	// Empty writes "type": null, an empty payload as in bootstrap
	// Artifacts.
	Type string
	// Provides, Depends and ClearsProvides go to type-info. A Depends
	// value of one element is written as a string, as mender-artifact does
	// for -d KEY:VALUE. ClearsProvides nil omits the field.
	Provides       map[string]string
	Depends        map[string][]string
	ClearsProvides []string
	// ChecksumProvide, when set, adds a provides entry under this key
	// holding the SHA-256 (hex) of the payload's only file, as
	// mender-artifact does with rootfs-image.checksum.
	ChecksumProvide string
	// MetaData is written to headers/NNNN/meta-data when not nil; it must
	// be a JSON object.
	MetaData json.RawMessage
	// Files are the payload files, in order.
	Files []Source
}

// Source is a payload file to write. Open is called twice with Compression
// None (once to hash, once to write) and must yield the same bytes each
// time; once otherwise.
type Source struct {
	// Name is the file name in the Artifact; see ValidFileName.
	Name string
	// ModTime is recorded in the data tar. Zero: Spec.ModTime.
	ModTime time.Time
	Open    func() (io.ReadCloser, error)
}

// FileSource is a Source reading the file at path, named after its base.
func FileSource(path string) (Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Source{}, err
	}
	if !fi.Mode().IsRegular() {
		return Source{}, fmt.Errorf("%s: not a regular file", path)
	}
	return Source{
		Name:    fi.Name(),
		ModTime: fi.ModTime(),
		Open:    func() (io.ReadCloser, error) { return os.Open(path) },
	}, nil
}

// Validate checks the spec without writing anything and names every
// problem.
func (s *Spec) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Name == "" {
		add("name: required")
	}
	if len(s.Depends.DeviceTypes) == 0 {
		add("depends.device_types: at least one device type is required")
	}
	if len(s.Payloads) == 0 || len(s.Payloads) > maxPayloads {
		add("payloads: want 1 to %d, got %d", maxPayloads, len(s.Payloads))
	}
	if s.Compression < Gzip || s.Compression > Zstd {
		add("compression: unknown value %d", int(s.Compression))
	}
	if s.Key != nil {
		if err := checkKeyType(s.Key.Public()); err != nil {
			add("key: %v", err)
		}
	}
	scripts := map[string]bool{}
	for i, sc := range s.Scripts {
		if !ValidScriptName(sc.Name) {
			add("scripts[%d]: %q is not State_(Enter|Leave|Error)_NN[_description]", i, sc.Name)
		}
		if scripts[sc.Name] {
			add("scripts[%d]: %q given twice", i, sc.Name)
		}
		scripts[sc.Name] = true
	}
	for i, p := range s.Payloads {
		where := fmt.Sprintf("payloads[%d]", i)
		names := map[string]bool{}
		for j, f := range p.Files {
			if !ValidFileName(f.Name) {
				add("%s.files[%d]: %q: names may hold only letters, digits, '_', '-', '.' and ','", where, j, f.Name)
			}
			if names[f.Name] {
				add("%s.files[%d]: %q given twice", where, j, f.Name)
			}
			names[f.Name] = true
			if f.Open == nil {
				add("%s.files[%d]: no Open function", where, j)
			}
		}
		if p.ChecksumProvide != "" && len(p.Files) != 1 {
			add("%s.checksum_provide: needs exactly one file, got %d", where, len(p.Files))
		}
		for k := range p.Provides {
			if k == "" || k == ProvidesName || k == ProvidesGroup {
				add("%s.provides: key %q is not allowed", where, k)
			}
		}
		for k, v := range p.Depends {
			if k == "" || k == dependsDevice || (k == ProvidesName && len(s.Depends.ArtifactNames) > 0) ||
				(k == ProvidesGroup && len(s.Depends.ArtifactGroups) > 0) {
				add("%s.depends: key %q is not allowed or clashes with header-info", where, k)
			}
			if len(v) == 0 {
				add("%s.depends: key %q has no value", where, k)
			}
		}
		if p.MetaData != nil {
			var obj map[string]any
			if err := json.Unmarshal(p.MetaData, &obj); err != nil || obj == nil {
				add("%s.meta_data: want a JSON object", where)
			}
		}
	}
	return errors.Join(errs...)
}

// payloadOut is a payload being written: its files' sums and sizes, and
// its data member, staged in a temp file unless uncompressed.
type payloadOut struct {
	sums  [][32]byte
	sizes []int64
	temp  *os.File // compressed data member
	size  int64    // data member size
}

// Write writes the Artifact described by spec to w. With Compression None
// it streams the payload files straight into w (hashing them first); else
// each data member is compressed into a temp file first, as the outer tar
// needs its size up front.
func Write(w io.Writer, spec *Spec) (err error) {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("artifact: write: %w", err)
	}
	mtime := spec.ModTime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	buf := make([]byte, copyBufferSize)
	outs := make([]*payloadOut, len(spec.Payloads))
	defer func() {
		for _, o := range outs {
			if o != nil && o.temp != nil {
				o.temp.Close()
				os.Remove(o.temp.Name())
			}
		}
	}()
	for i := range spec.Payloads {
		if outs[i], err = preparePayload(spec, i, mtime, buf); err != nil {
			return fmt.Errorf("artifact: write: %w", err)
		}
	}

	header, err := buildHeaderMember(spec, outs, mtime)
	if err != nil {
		return fmt.Errorf("artifact: write: %w", err)
	}
	headerName := headerBase + spec.Compression.Suffix()
	var mb manifestBuilder
	for i, p := range spec.Payloads {
		for j, f := range p.Files {
			if err := mb.add(dataFilePath(i, f.Name), outs[i].sums[j]); err != nil {
				return fmt.Errorf("artifact: write: %w", err)
			}
		}
	}
	mb.add(headerName, sha256.Sum256(header))
	mb.add(memberVersion, sha256.Sum256([]byte(versionBytes)))
	manifest := mb.bytes()

	tw := tar.NewWriter(w)
	fixed := time.Unix(0, 0)
	if err := writeMember(tw, memberVersion, []byte(versionBytes), fixed); err != nil {
		return err
	}
	if err := writeMember(tw, memberManifest, manifest, fixed); err != nil {
		return err
	}
	if spec.Key != nil {
		sig, err := Sign(spec.Key, manifest)
		if err != nil {
			return fmt.Errorf("artifact: write: %w", err)
		}
		if err := writeMember(tw, memberSignature, sig, fixed); err != nil {
			return err
		}
	}
	if err := writeMember(tw, headerName, header, mtime); err != nil {
		return err
	}
	for i := range spec.Payloads {
		if err := writeDataMember(tw, spec, i, outs[i], mtime, buf); err != nil {
			return fmt.Errorf("artifact: write %s: %w", dataMemberName(i, spec.Compression), err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("artifact: write: %w", err)
	}
	return nil
}

// preparePayload hashes a payload's files and, when compressing, builds its
// data member in a temp file in the same pass.
func preparePayload(spec *Spec, i int, mtime time.Time, buf []byte) (_ *payloadOut, err error) {
	p := &spec.Payloads[i]
	o := &payloadOut{}
	if spec.Compression == None {
		for _, f := range p.Files {
			sum, size, err := hashSource(f, buf)
			if err != nil {
				return nil, err
			}
			o.sums, o.sizes = append(o.sums, sum), append(o.sizes, size)
		}
		size, err := dataTarSize(p.Files, o.sizes, mtime)
		if err != nil {
			return nil, err
		}
		o.size = size
		return o, nil
	}
	tmp, err := os.CreateTemp(spec.TempDir, "edgefort-artifact-*.tar"+spec.Compression.Suffix())
	if err != nil {
		return nil, err
	}
	o.temp = tmp
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw, err := spec.Compression.newWriter(tmp)
	if err != nil {
		return nil, err
	}
	dtw := tar.NewWriter(zw)
	h := sha256.New()
	for _, f := range p.Files {
		// The size is needed before the content: stat-like sources are not
		// assumed, so hash first, then write while hashing again.
		sum, size, err := hashSource(f, buf)
		if err != nil {
			return nil, err
		}
		if err := copySource(dtw, f, size, sum, mtime, h, buf); err != nil {
			return nil, err
		}
		o.sums, o.sizes = append(o.sums, sum), append(o.sizes, size)
	}
	if err := dtw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if o.size, err = tmp.Seek(0, io.SeekCurrent); err != nil {
		return nil, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return o, nil
}

// hashSource reads a source once: its SHA-256 and size.
func hashSource(f Source, buf []byte) (sum [32]byte, size int64, err error) {
	rc, err := f.Open()
	if err != nil {
		return sum, 0, fmt.Errorf("payload file %s: %w", f.Name, err)
	}
	defer rc.Close()
	h := sha256.New()
	size, err = io.CopyBuffer(h, onlyReader{rc}, buf)
	if err != nil {
		return sum, 0, fmt.Errorf("payload file %s: %w", f.Name, err)
	}
	h.Sum(sum[:0])
	return sum, size, nil
}

// copySource writes one file into a data tar, checking that it still has
// the size and checksum it had when hashed.
func copySource(dtw *tar.Writer, f Source, size int64, sum [32]byte, mtime time.Time, h hash.Hash, buf []byte) error {
	if err := dtw.WriteHeader(dataFileHeader(f, size, mtime)); err != nil {
		return fmt.Errorf("payload file %s: %w", f.Name, err)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("payload file %s: %w", f.Name, err)
	}
	defer rc.Close()
	h.Reset()
	n, err := io.CopyBuffer(io.MultiWriter(dtw, h), onlyReader{rc}, buf)
	if err != nil {
		return fmt.Errorf("payload file %s: %w", f.Name, err)
	}
	var got [32]byte
	if h.Sum(got[:0]); n != size || got != sum {
		return fmt.Errorf("payload file %s: changed while the artifact was written", f.Name)
	}
	return nil
}

func dataFileHeader(f Source, size int64, mtime time.Time) *tar.Header {
	if !f.ModTime.IsZero() {
		mtime = f.ModTime
	}
	return &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Size: size, Mode: 0o644, ModTime: mtime}
}

// dataTarSize is the exact size of an uncompressed data tar: each file's
// header blocks (as archive/tar writes them, extended headers included) and
// padded content, then the two zero blocks.
func dataTarSize(files []Source, sizes []int64, mtime time.Time) (int64, error) {
	var total int64
	for i, f := range files {
		var cw countWriter
		if err := tar.NewWriter(&cw).WriteHeader(dataFileHeader(f, sizes[i], mtime)); err != nil {
			return 0, fmt.Errorf("payload file %s: %w", f.Name, err)
		}
		total += cw.n + (sizes[i]+511)/512*512
	}
	return total + 1024, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// writeDataMember writes data/NNNN: the staged temp file, or for
// Compression None the files streamed through a second time.
func writeDataMember(tw *tar.Writer, spec *Spec, i int, o *payloadOut, mtime time.Time, buf []byte) error {
	name := dataMemberName(i, spec.Compression)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: o.size, Mode: 0o600, ModTime: mtime}); err != nil {
		return err
	}
	if o.temp != nil {
		_, err := io.CopyBuffer(tw, onlyReader{o.temp}, buf)
		return err
	}
	dtw := tar.NewWriter(tw)
	h := sha256.New()
	for j, f := range spec.Payloads[i].Files {
		if err := copySource(dtw, f, o.sizes[j], o.sums[j], mtime, h, buf); err != nil {
			return err
		}
	}
	return dtw.Close()
}

// writeMember writes a small member.
func writeMember(tw *tar.Writer, name string, data []byte, mtime time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o600, ModTime: mtime}); err != nil {
		return fmt.Errorf("artifact: write %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("artifact: write %s: %w", name, err)
	}
	return nil
}

// buildHeaderMember builds the compressed header tar: header-info,
// scripts/*, then headers/NNNN/type-info and meta-data.
func buildHeaderMember(spec *Spec, outs []*payloadOut, mtime time.Time) ([]byte, error) {
	var out bytes.Buffer
	zw, err := spec.Compression.newWriter(&out)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	fixed := time.Unix(0, 0)
	info, err := headerInfoJSONFor(spec)
	if err != nil {
		return nil, err
	}
	if err := writeMember(tw, "header-info", info, fixed); err != nil {
		return nil, err
	}
	for _, sc := range spec.Scripts {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "scripts/" + sc.Name, Size: int64(len(sc.Data)), Mode: 0o755, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(sc.Data); err != nil {
			return nil, err
		}
	}
	for i := range spec.Payloads {
		ti, err := typeInfoJSONFor(&spec.Payloads[i], outs[i])
		if err != nil {
			return nil, err
		}
		if err := writeMember(tw, fmt.Sprintf("headers/%04d/type-info", i), ti, fixed); err != nil {
			return nil, err
		}
		if md := spec.Payloads[i].MetaData; md != nil {
			var c bytes.Buffer
			if err := json.Compact(&c, md); err != nil {
				return nil, fmt.Errorf("payloads[%d].meta_data: %w", i, err)
			}
			if err := writeMember(tw, fmt.Sprintf("headers/%04d/meta-data", i), c.Bytes(), fixed); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// headerInfoJSONFor renders header-info with mender-artifact's key order.
func headerInfoJSONFor(spec *Spec) ([]byte, error) {
	type typ struct {
		Type *string `json:"type"`
	}
	type provides struct {
		Name  string `json:"artifact_name"`
		Group string `json:"artifact_group,omitempty"`
	}
	type depends struct {
		Names   []string `json:"artifact_name,omitempty"`
		Devices []string `json:"device_type"`
		Groups  []string `json:"artifact_group,omitempty"`
	}
	v := struct {
		Payloads []typ    `json:"payloads"`
		Provides provides `json:"artifact_provides"`
		Depends  depends  `json:"artifact_depends"`
	}{
		Provides: provides{Name: spec.Name, Group: spec.Group},
		Depends:  depends{Names: spec.Depends.ArtifactNames, Devices: spec.Depends.DeviceTypes, Groups: spec.Depends.ArtifactGroups},
	}
	for _, p := range spec.Payloads {
		v.Payloads = append(v.Payloads, typ{Type: nullable(p.Type)})
	}
	return json.Marshal(v)
}

// typeInfoJSONFor renders type-info.
func typeInfoJSONFor(p *PayloadSpec, o *payloadOut) ([]byte, error) {
	provides := maps.Clone(p.Provides)
	if p.ChecksumProvide != "" {
		if provides == nil {
			provides = map[string]string{}
		}
		provides[p.ChecksumProvide] = fmt.Sprintf("%x", o.sums[0])
	}
	var depends map[string]any
	for _, k := range slices.Sorted(maps.Keys(p.Depends)) {
		if depends == nil {
			depends = map[string]any{}
		}
		if v := p.Depends[k]; len(v) == 1 {
			depends[k] = v[0]
		} else {
			depends[k] = v
		}
	}
	v := struct {
		Type     *string           `json:"type"`
		Depends  map[string]any    `json:"artifact_depends,omitempty"`
		Provides map[string]string `json:"artifact_provides,omitempty"`
		Clears   []string          `json:"clears_artifact_provides,omitempty"`
	}{Type: nullable(p.Type), Depends: depends, Provides: provides, Clears: p.ClearsProvides}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if p.ClearsProvides != nil && len(p.ClearsProvides) == 0 {
		// omitempty drops an empty list, which means something else than
		// an absent one (see Payload.ClearsProvides).
		b = append(b[:len(b)-1], []byte(`,"clears_artifact_provides":[]}`)...)
	}
	return b, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
