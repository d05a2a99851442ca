package artifact

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseManifest(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name      string
		in        string
		wantNames []string
		wantErr   string
	}{
		{"mender-artifact output", sum + "  data/0000/p1.txt\n" + sum + "  header.tar.gz\n" + sum + "  version\n",
			[]string{"data/0000/p1.txt", "header.tar.gz", "version"}, ""},
		{"blank lines and no final newline", "\n" + sum + "  version\n\n" + sum + "  header.tar", []string{"version", "header.tar"}, ""},
		{"upper-case hex", strings.ToUpper(sum) + "  version\n", []string{"version"}, ""},
		{"path with spaces", sum + "  a  b\n", []string{"a  b"}, ""},
		{"empty", "", nil, ""},
		{"one space", sum + " version\n", nil, "line 1: want"},
		{"short sum", sum[:62] + "  version\n", nil, "line 1: want"},
		{"not hex", strings.Repeat("zz", 32) + "  version\n", nil, "not hex"},
		{"empty path", sum + "  \n", nil, "empty path"},
		{"duplicate", sum + "  version\n" + sum + "  version\n", nil, `line 2: "version" listed twice`},
		{"carriage return", sum + "  version\r\n", nil, "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrFormat) {
					t.Fatalf("error = %v, want ErrFormat containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.wantNames, m.Names()); d != "" {
				t.Errorf("names (-want +got):\n%s", d)
			}
			if string(m.Raw) != tt.in {
				t.Error("Raw differs from the input")
			}
		})
	}
}

func TestManifestBuilderRoundTrip(t *testing.T) {
	var b manifestBuilder
	want := map[string][32]byte{"data/0000/a": sha256sum([]byte("a")), "header.tar.xz": sha256sum([]byte("h")), "version": sha256sum([]byte(versionBytes))}
	for _, n := range []string{"data/0000/a", "header.tar.xz", "version"} {
		if err := b.add(n, want[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.add("version", want["version"]); err == nil {
		t.Error("duplicate add: no error")
	}
	m, err := ParseManifest(b.bytes())
	if err != nil {
		t.Fatal(err)
	}
	for n, s := range want {
		if got, ok := m.Sum(n); !ok || got != s {
			t.Errorf("Sum(%q) = %x, %v; want %x", n, got, ok, s)
		}
	}
	if want := "96bcd965947569404798bcbdb614f103db5a004eb6e364cfc162c146890ea35b  version\n"; !bytes.HasSuffix(b.bytes(), []byte(want)) {
		t.Errorf("manifest does not end with the well-known version line:\n%s", b.bytes())
	}
}

// FuzzParseManifest: any input parses or fails cleanly; what parses
// re-renders to an equivalent manifest.
func FuzzParseManifest(f *testing.F) {
	sum := strings.Repeat("0f", 32)
	f.Add([]byte(sum + "  data/0000/p1.txt\n" + sum + "  header.tar.gz\n" + sum + "  version\n"))
	f.Add([]byte(sum + "  version"))
	f.Add([]byte("\n\n"))
	f.Add([]byte(sum + "  a\n" + sum + "  a\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseManifest(in)
		if err != nil {
			return
		}
		var b manifestBuilder
		for _, n := range m.Names() {
			s, ok := m.Sum(n)
			if !ok {
				t.Fatalf("name %q listed but has no sum", n)
			}
			if err := b.add(n, s); err != nil {
				t.Fatal(err)
			}
		}
		m2, err := ParseManifest(b.bytes())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.bytes(), err)
		}
		if d := cmp.Diff(m.Names(), m2.Names()); d != "" {
			t.Fatalf("names changed (-first +second):\n%s", d)
		}
		if m.Len() != m2.Len() {
			t.Fatalf("Len %d, then %d", m.Len(), m2.Len())
		}
	})
}
