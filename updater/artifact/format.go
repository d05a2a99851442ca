package artifact

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Member names of the outer tar, in the order they must appear:
//
//	version, manifest, [manifest.sig], [manifest-augment],
//	header.tar<X>, [header-augment.tar<X>], data/0000.tar<Y>, data/0001.tar<Z>, ...
//
// X is one compression suffix shared by header and header-augment; each data
// member has its own. header-augment comes if and only if manifest-augment
// does. Nothing may follow the data members.
const (
	memberVersion         = "version"
	memberManifest        = "manifest"
	memberSignature       = "manifest.sig"
	memberManifestAugment = "manifest-augment"
	headerBase            = "header.tar"
	headerAugmentBase     = "header-augment.tar"
	dataPrefix            = "data/"
)

// versionBytes is the version member mender-artifact writes, byte for byte.
const versionBytes = `{"format":"mender","version":3}`

// Size caps on members read whole. They are far above what real Artifacts
// use (a version of 31 bytes, manifests of a few hundred bytes, headers of a
// few KiB) and only keep a hostile Artifact from growing memory.
const (
	maxVersionSize   = 4 << 10
	maxManifestSize  = 1 << 20
	maxSignatureSize = 16 << 10
	maxHeaderSize    = 16 << 20 // a header member as stored (compressed)
	maxHeaderUnpack  = 32 << 20 // all of a header's files, uncompressed
	maxJSONSize      = 1 << 20  // one header-info, type-info or meta-data
	maxPayloads      = 1000     // data/0000 ... data/0999
)

// Bounds on what a data member may decompress to besides its files' bytes.
// mender-artifact (Go's archive/tar) writes one 512-byte header per file
// and ends with 1024 zero bytes; GNU tar and bsdtar pad the end to a
// 10240-byte record. Past these the decompressed bytes are unsigned: the
// signature covers the files' checksums, not the compressed member.
const (
	maxTarHeaders = 64 << 10 // per entry: the previous entry's padding and this one's headers (PAX, long names)
	maxTarPadding = 64 << 10 // after the end-of-archive blocks, zeros only
)

// copyBufferSize is the buffer used to move payload bytes. Large reads keep
// system calls and per-call overhead well below the cost of SHA-256.
const copyBufferSize = 1 << 20

// pipelineBuffers is how many copyBufferSize buffers a payload file's
// WriteTo keeps in flight between its read, hash and write stages.
const pipelineBuffers = 4

// Errors callers branch on. Returned errors wrap them and say what failed.
var (
	// ErrFormat: the Artifact is malformed: members out of order, unknown
	// or missing members, bad JSON, a file missing from or not listed in the
	// manifest, truncation.
	ErrFormat = errors.New("invalid artifact")
	// ErrChecksum: content does not match its manifest checksum.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrSignature: manifest.sig does not verify with any configured key.
	ErrSignature = errors.New("signature verification failed")
	// ErrUnsigned: keys are configured but the Artifact has no signature.
	ErrUnsigned = errors.New("artifact is not signed")
	// ErrDepends: the device does not meet the Artifact's depends.
	ErrDepends = errors.New("artifact depends not met")
)

// formatErr builds an error wrapping ErrFormat.
func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// splitSuffix returns the compression of a member named base+suffix.
func splitSuffix(name, base string) (Compression, bool) {
	suffix, ok := strings.CutPrefix(name, base)
	if !ok {
		return 0, false
	}
	return compressionForSuffix(suffix)
}

// headerMember reports whether name is header.tar<X> and which X.
func headerMember(name string) (Compression, bool) { return splitSuffix(name, headerBase) }

// dataMember parses data/NNNN.tar<X>.
func dataMember(name string) (index int, c Compression, ok bool) {
	rest, ok := strings.CutPrefix(name, dataPrefix)
	if !ok || len(rest) < 4 {
		return 0, 0, false
	}
	n, err := strconv.Atoi(rest[:4])
	if err != nil || !isDigits(rest[:4]) {
		return 0, 0, false
	}
	c, ok = splitSuffix(rest[4:], ".tar")
	return n, c, ok
}

// dataMemberName is data/NNNN.tar<X>.
func dataMemberName(index int, c Compression) string {
	return fmt.Sprintf("%s%04d.tar%s", dataPrefix, index, c.Suffix())
}

// dataFilePath is the manifest path of a payload file: data/NNNN/<name>.
func dataFilePath(index int, name string) string {
	return fmt.Sprintf("%s%04d/%s", dataPrefix, index, name)
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// payloadNameRE is the rule mender-artifact applies to payload file names:
// flat names of letters, digits, '_', '-', '.' and ','.
var payloadNameRE = regexp.MustCompile(`^[\w\-.,]+$`)

// ValidFileName reports whether name may name a payload file: letters,
// digits, '_', '-', '.' and ',', not "." or "..".
func ValidFileName(name string) bool {
	return payloadNameRE.MatchString(name) && name != "." && name != ".."
}

// scriptNameRE is the state script naming rule of the Mender client:
// <State>_<Enter|Leave|Error>_<NN>[_<description>].
var scriptNameRE = regexp.MustCompile(`^[A-Za-z]+_(Enter|Leave|Error)_[0-9][0-9](_\S+)?$`)

// ValidScriptName reports whether name follows the state script naming
// rule, State_(Enter|Leave|Error)_NN[_description], and is a plain file
// name. The writer requires it; the reader keeps any plain file name and
// leaves skipping to the script runner, as the Mender client does.
func ValidScriptName(name string) bool {
	return scriptNameRE.MatchString(name) && plainName(name)
}

// plainName: a single path element that is safe to create in a directory.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\\x00")
}
