package artifact

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Header is what an Artifact says about itself, read from the version,
// manifest, signature and header members, all verified before the reader
// returns it.
type Header struct {
	// Name is artifact_provides.artifact_name: the name the device reports
	// once the Artifact is installed. Never empty.
	Name string
	// Group is artifact_provides.artifact_group; empty if none.
	Group string
	// Depends is header-info's artifact_depends.
	Depends Depends
	// Payloads has one entry per data member, in order.
	Payloads []Payload
	// Scripts are the state scripts from header.tar's scripts/, in order.
	Scripts []Script

	// Signature says whether the manifest was signed and verified.
	Signature SignatureStatus
	// SignatureKey is the index in Options.Keys of the key that verified
	// the signature, or -1.
	SignatureKey int

	// Manifest is the signed manifest; AugmentManifest the unsigned
	// manifest-augment, nil when the Artifact is not augmented.
	Manifest, AugmentManifest *Manifest
	// HeaderMember is the header member's name, e.g. "header.tar.gz".
	HeaderMember string
	// HeaderInfo is the raw header-info JSON, for installers that hand it
	// on (update modules get it in their file tree).
	HeaderInfo json.RawMessage
}

// Depends is header-info's artifact_depends: the Artifact installs on a
// device whose type is one of DeviceTypes and, when the lists are not empty,
// whose current artifact_name and artifact_group are among ArtifactNames and
// ArtifactGroups.
type Depends struct {
	DeviceTypes    []string `json:"device_type"`
	ArtifactNames  []string `json:"artifact_name,omitempty"`
	ArtifactGroups []string `json:"artifact_group,omitempty"`
}

// Payload is one payload's header: its type-info and meta-data.
type Payload struct {
	// Index is the NNNN of data/NNNN.
	Index int
	// Type is the update type (update module name, or "rootfs-image").
	// Empty for an empty payload ("type": null), as in bootstrap Artifacts.
	// When type-info carries the empty "type":"" that mender-artifact 3.9
	// writes for rootfs images, Type comes from header-info.
	Type string
	// Provides is type-info's artifact_provides, stored on commit.
	Provides map[string]string
	// Depends is type-info's artifact_depends; a single string value is a
	// list of one.
	Depends map[string][]string
	// ClearsProvides is type-info's clears_artifact_provides: globs of
	// stored provides to drop on commit. Nil when absent, which means "drop
	// every provides of the previous Artifact" (see NewProvides); empty but
	// not nil when present and empty.
	ClearsProvides []string
	// MetaData is headers/NNNN/meta-data, a JSON object; nil when absent or
	// empty.
	MetaData json.RawMessage
	// TypeInfo is the raw type-info JSON.
	TypeInfo json.RawMessage
	// Augment is the unsigned header-augment part for this payload, nil when
	// there is none.
	Augment *Augment
}

// Augment is a payload's header-augment part. It is not covered by the
// signature: an installer may only take from it what its update type
// declares it accepts (Mender's PermittedAugmentedHeaders).
type Augment struct {
	// Type is the augment's payload type; the original type when it has
	// none.
	Type     string
	Depends  map[string][]string
	MetaData json.RawMessage
	TypeInfo json.RawMessage
}

// Script is a state script shipped in the header.
type Script struct {
	// Name is the file name, e.g. ArtifactInstall_Enter_00_hello.
	Name string
	Data []byte
}

// SignatureStatus tells whether an Artifact was signed and verified.
type SignatureStatus int

const (
	// Unsigned: no manifest.sig.
	Unsigned SignatureStatus = iota
	// SignedUnverified: signed, but no verification key was configured.
	SignedUnverified
	// SignedVerified: the signature verified with one of the keys.
	SignedVerified
)

func (s SignatureStatus) String() string {
	switch s {
	case Unsigned:
		return "unsigned"
	case SignedUnverified:
		return "signed, not verified (no key given)"
	case SignedVerified:
		return "signed and verified"
	}
	return fmt.Sprintf("SignatureStatus(%d)", int(s))
}

// EffectiveType is the type the payload is installed with: the augment's
// when there is one, else Type.
func (p *Payload) EffectiveType() string {
	if p.Augment != nil && p.Augment.Type != "" {
		return p.Augment.Type
	}
	return p.Type
}

// JSON shapes of header-info and type-info.
type headerInfoJSON struct {
	Payloads []struct {
		Type *string `json:"type"`
	} `json:"payloads"`
	Provides struct {
		Name  string `json:"artifact_name"`
		Group string `json:"artifact_group,omitempty"`
	} `json:"artifact_provides"`
	Depends map[string]json.RawMessage `json:"artifact_depends"`
}

type typeInfoJSON struct {
	Type     *string                    `json:"type"`
	Provides map[string]string          `json:"artifact_provides"`
	Depends  map[string]json.RawMessage `json:"artifact_depends"`
	Clears   []string                   `json:"clears_artifact_provides"`
}

// headerFiles are the files of a header or header-augment tar.
type headerFiles struct {
	info    headerInfoJSON
	rawInfo []byte
	scripts []Script
	buckets []headerBucket // headers/NNNN
}

type headerBucket struct {
	typeInfo []byte
	metaData []byte
	hasMeta  bool
}

// parseHeaderTar reads a decompressed header tar. Its files must come in
// this order: header-info, scripts/* (not in header-augment), then for each
// payload headers/NNNN/type-info and optionally headers/NNNN/meta-data.
// Directory entries are skipped; any other file is an error.
func parseHeaderTar(r io.Reader, augment bool) (*headerFiles, error) {
	lr := &io.LimitedReader{R: r, N: maxHeaderUnpack + 1}
	tr := tar.NewReader(lr)
	hf := &headerFiles{}
	first := true
	for {
		th, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if lr.N <= 0 {
				return nil, formatErr("header holds more than %d bytes", maxHeaderUnpack)
			}
			return nil, formatErr("header tar: %v", err)
		}
		if th.Typeflag == tar.TypeDir {
			continue
		}
		if th.Typeflag != tar.TypeReg {
			return nil, formatErr("header entry %q: not a regular file", th.Name)
		}
		name := th.Name
		if first != (name == "header-info") {
			return nil, formatErr("header entry %q: header-info must come first, once", name)
		}
		first = false
		switch {
		case name == "header-info":
			if hf.rawInfo, err = readCapped(tr, th, maxJSONSize); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(hf.rawInfo, &hf.info); err != nil {
				return nil, formatErr("header-info: %v", err)
			}
		case strings.HasPrefix(name, "scripts/"):
			base := strings.TrimPrefix(name, "scripts/")
			if augment {
				return nil, formatErr("header-augment entry %q: scripts are not allowed there", name)
			}
			if len(hf.buckets) > 0 {
				return nil, formatErr("header entry %q: scripts must come before headers/", name)
			}
			if !plainName(base) {
				return nil, formatErr("header entry %q: invalid script name", name)
			}
			data, err := readCapped(tr, th, maxHeaderUnpack)
			if err != nil {
				return nil, err
			}
			hf.scripts = append(hf.scripts, Script{Name: base, Data: data})
		case strings.HasPrefix(name, "headers/"):
			if err := hf.addBucketFile(tr, th); err != nil {
				return nil, err
			}
		default:
			return nil, formatErr("header entry %q: not part of a version 3 header", name)
		}
	}
	if first {
		return nil, formatErr("header has no header-info")
	}
	return hf, nil
}

// addBucketFile handles headers/NNNN/type-info and headers/NNNN/meta-data.
func (hf *headerFiles) addBucketFile(tr *tar.Reader, th *tar.Header) error {
	parts := strings.Split(th.Name, "/")
	if len(parts) != 3 || len(parts[1]) != 4 || !isDigits(parts[1]) {
		return formatErr("header entry %q: want headers/NNNN/type-info or meta-data", th.Name)
	}
	index := int(parts[1][0]-'0')*1000 + int(parts[1][1]-'0')*100 + int(parts[1][2]-'0')*10 + int(parts[1][3]-'0')
	switch parts[2] {
	case "type-info":
		if index != len(hf.buckets) {
			return formatErr("header entry %q: want headers/%04d/type-info next", th.Name, len(hf.buckets))
		}
		data, err := readCapped(tr, th, maxJSONSize)
		if err != nil {
			return err
		}
		hf.buckets = append(hf.buckets, headerBucket{typeInfo: data})
	case "meta-data":
		last := len(hf.buckets) - 1
		if index != last || hf.buckets[last].hasMeta {
			return formatErr("header entry %q: must follow headers/%04d/type-info, once", th.Name, index)
		}
		data, err := readCapped(tr, th, maxJSONSize)
		if err != nil {
			return err
		}
		hf.buckets[last].metaData, hf.buckets[last].hasMeta = data, true
	default:
		// Version 2's "files" and "checksums" included.
		return formatErr("header entry %q: not part of a version 3 header", th.Name)
	}
	return nil
}

// readCapped reads a tar entry of at most max bytes.
func readCapped(tr *tar.Reader, th *tar.Header, max int64) ([]byte, error) {
	if th.Size > max {
		return nil, formatErr("header entry %q: %d bytes, more than the %d allowed", th.Name, th.Size, max)
	}
	data := make([]byte, th.Size)
	if _, err := io.ReadFull(tr, data); err != nil {
		return nil, formatErr("header entry %q: %v", th.Name, err)
	}
	return data, nil
}

// buildHeader turns the verified header files into a Header.
func buildHeader(hf *headerFiles, strictTypeInfo bool) (*Header, error) {
	info := &hf.info
	h := &Header{
		Name:         info.Provides.Name,
		Group:        info.Provides.Group,
		Scripts:      hf.scripts,
		HeaderInfo:   hf.rawInfo,
		SignatureKey: -1,
	}
	if h.Name == "" {
		return nil, formatErr("header-info: artifact_provides.artifact_name is empty")
	}
	var err error
	if h.Depends, err = parseHeaderDepends(info.Depends); err != nil {
		return nil, err
	}
	if len(h.Depends.DeviceTypes) == 0 {
		return nil, formatErr("header-info: artifact_depends.device_type is empty")
	}
	if len(info.Payloads) == 0 || len(info.Payloads) > maxPayloads {
		return nil, formatErr("header-info: %d payloads, want 1 to %d", len(info.Payloads), maxPayloads)
	}
	if len(hf.buckets) != len(info.Payloads) {
		return nil, formatErr("header: %d type-info files for %d payloads", len(hf.buckets), len(info.Payloads))
	}
	for i, b := range hf.buckets {
		p, err := parsePayload(i, info.Payloads[i].Type, b, strictTypeInfo)
		if err != nil {
			return nil, err
		}
		h.Payloads = append(h.Payloads, p)
	}
	return h, nil
}

// parsePayload parses one headers/NNNN bucket against header-info's type.
func parsePayload(i int, infoType *string, b headerBucket, strict bool) (Payload, error) {
	p := Payload{Index: i, TypeInfo: b.typeInfo}
	where := fmt.Sprintf("headers/%04d/type-info", i)
	var ti typeInfoJSON
	if err := json.Unmarshal(b.typeInfo, &ti); err != nil {
		return p, formatErr("%s: %v", where, err)
	}
	switch {
	case infoType == nil && ti.Type == nil:
	case infoType == nil || *infoType == "":
		return p, formatErr("header-info: payload %d: type must be a non-empty string or null", i)
	case ti.Type != nil && *ti.Type == "" && !strict:
		p.Type = *infoType // mender-artifact 3.9 rootfs-image
	case ti.Type == nil || *ti.Type != *infoType:
		return p, formatErr("%s: type %s does not match header-info's %q", where, quoteOrNull(ti.Type), *infoType)
	default:
		p.Type = *infoType
	}
	p.Provides = ti.Provides
	for k := range p.Provides {
		if k == "" {
			return p, formatErr("%s: empty provides key", where)
		}
	}
	var err error
	if p.Depends, err = parseDependsMap(ti.Depends, where); err != nil {
		return p, err
	}
	p.ClearsProvides = ti.Clears
	if p.MetaData, err = parseMetaData(b, i); err != nil {
		return p, err
	}
	return p, nil
}

// applyAugment attaches header-augment buckets to the payloads.
func applyAugment(h *Header, hf *headerFiles) error {
	if len(hf.buckets) != len(h.Payloads) {
		return formatErr("header-augment: %d type-info files for %d payloads", len(hf.buckets), len(h.Payloads))
	}
	for i, b := range hf.buckets {
		where := fmt.Sprintf("header-augment headers/%04d/type-info", i)
		var ti typeInfoJSON
		if err := json.Unmarshal(b.typeInfo, &ti); err != nil {
			return formatErr("%s: %v", where, err)
		}
		if len(ti.Provides) > 0 || ti.Clears != nil {
			return formatErr("%s: provides and clears_provides may not be augmented", where)
		}
		a := &Augment{Type: h.Payloads[i].Type, TypeInfo: b.typeInfo}
		if ti.Type != nil && *ti.Type != "" {
			a.Type = *ti.Type
		}
		var err error
		if a.Depends, err = parseDependsMap(ti.Depends, where); err != nil {
			return err
		}
		if a.MetaData, err = parseMetaData(b, i); err != nil {
			return err
		}
		h.Payloads[i].Augment = a
	}
	return nil
}

// parseMetaData accepts an empty file or a JSON object.
func parseMetaData(b headerBucket, i int) (json.RawMessage, error) {
	if len(bytes.TrimSpace(b.metaData)) == 0 {
		return nil, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(b.metaData, &obj); err != nil || obj == nil {
		return nil, formatErr("headers/%04d/meta-data: want a JSON object", i)
	}
	return b.metaData, nil
}

// parseHeaderDepends reads header-info's artifact_depends. Unknown keys
// are an error: a dependency that is not understood cannot be checked.
func parseHeaderDepends(m map[string]json.RawMessage) (Depends, error) {
	var d Depends
	for k, raw := range m {
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return d, formatErr("header-info: artifact_depends.%s: want a list of strings", k)
		}
		switch k {
		case "device_type":
			d.DeviceTypes = list
		case "artifact_name":
			d.ArtifactNames = list
		case "artifact_group":
			d.ArtifactGroups = list
		default:
			return d, formatErr("header-info: unknown artifact_depends key %q", k)
		}
	}
	return d, nil
}

// parseDependsMap reads type-info's artifact_depends: values are strings
// or lists of strings.
func parseDependsMap(m map[string]json.RawMessage, where string) (map[string][]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(m))
	for k, raw := range m {
		if k == "" {
			return nil, formatErr("%s: empty depends key", where)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			out[k] = []string{s}
			continue
		}
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil || list == nil {
			return nil, formatErr("%s: artifact_depends.%s: want a string or a list of strings", where, k)
		}
		out[k] = list
	}
	return out, nil
}

func quoteOrNull(s *string) string {
	if s == nil {
		return "null"
	}
	return fmt.Sprintf("%q", *s)
}

// checkAugmentPermitted refuses augmented payloads whose type the consumer
// did not declare.
func checkAugmentPermitted(h *Header, permitted []string, all bool) error {
	if all {
		return nil
	}
	var errs []error
	for _, p := range h.Payloads {
		if p.Augment == nil {
			continue
		}
		if !slices.Contains(permitted, p.EffectiveType()) {
			errs = append(errs, fmt.Errorf("payload %d: augmented artifacts are not permitted for type %q", p.Index, p.EffectiveType()))
		}
	}
	return errors.Join(errs...)
}
