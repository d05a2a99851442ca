package artifact

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
)

// Manifest is a parsed manifest or manifest-augment: a SHA-256 per path, as
// sha256sum prints them ("<64 hex>  <path>\n"). The signature covers the
// raw bytes, which Raw keeps.
type Manifest struct {
	// Raw is the member exactly as read or written.
	Raw []byte

	sums  map[string][32]byte
	names []string // in the order of Raw
}

// ParseManifest parses manifest text. Blank lines are ignored; a line that
// is not "<64 hex digits>  <path>", a carriage return, an empty path or a
// path listed twice is an error naming the line.
func ParseManifest(b []byte) (*Manifest, error) {
	m := &Manifest{Raw: b, sums: make(map[string][32]byte)}
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		sum, path, err := parseManifestLine(line)
		if err != nil {
			return nil, formatErr("manifest line %d: %v", i+1, err)
		}
		if _, dup := m.sums[path]; dup {
			return nil, formatErr("manifest line %d: %q listed twice", i+1, path)
		}
		m.sums[path] = sum
		m.names = append(m.names, path)
	}
	return m, nil
}

func parseManifestLine(line []byte) (sum [32]byte, path string, err error) {
	if bytes.ContainsAny(line, "\r\x00") {
		return sum, "", fmt.Errorf("control character in %.80q", line)
	}
	hexSum, rest, ok := bytes.Cut(line, []byte("  "))
	if !ok || len(hexSum) != 64 {
		return sum, "", fmt.Errorf("want \"<64 hex digits>  <path>\", got %.80q", line)
	}
	if _, err := hex.Decode(sum[:], hexSum); err != nil {
		return sum, "", fmt.Errorf("checksum %.64q: not hex", hexSum)
	}
	if len(rest) == 0 || strings.TrimSpace(string(rest)) == "" {
		return sum, "", fmt.Errorf("empty path")
	}
	return sum, string(rest), nil
}

// Sum returns the checksum listed for path.
func (m *Manifest) Sum(path string) ([32]byte, bool) {
	s, ok := m.sums[path]
	return s, ok
}

// Names lists the paths in manifest order.
func (m *Manifest) Names() []string { return append([]string(nil), m.names...) }

// Len is the number of entries.
func (m *Manifest) Len() int { return len(m.names) }

// manifestBuilder accumulates entries for the writer.
type manifestBuilder struct {
	buf  bytes.Buffer
	seen map[string]bool
}

func (b *manifestBuilder) add(path string, sum [32]byte) error {
	if b.seen == nil {
		b.seen = make(map[string]bool)
	}
	if b.seen[path] {
		return fmt.Errorf("manifest: %q listed twice", path)
	}
	b.seen[path] = true
	fmt.Fprintf(&b.buf, "%x  %s\n", sum, path)
	return nil
}

func (b *manifestBuilder) bytes() []byte { return b.buf.Bytes() }
