package artifact

import (
	"bytes"
	"crypto"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the .golden.json files of TestGolden")

// goldenDir holds Artifacts made by mender-artifact 3.9 (see gen.sh there),
// each beside what the reader must make of it.
const goldenDir = "testdata/mender-3.9"

type goldenSummary struct {
	Name         string            `json:"name"`
	Group        string            `json:"group,omitempty"`
	Depends      Depends           `json:"depends"`
	Signature    string            `json:"signature"`
	HeaderMember string            `json:"header_member"`
	Scripts      map[string]string `json:"scripts,omitempty"` // name -> sha256
	Payloads     []goldenPayload   `json:"payloads"`
}

type goldenPayload struct {
	Type           string              `json:"type"`
	AugmentType    string              `json:"augment_type,omitempty"`
	Provides       map[string]string   `json:"provides,omitempty"`
	Depends        map[string][]string `json:"depends,omitempty"`
	AugmentDepends map[string][]string `json:"augment_depends,omitempty"`
	AugmentMeta    json.RawMessage     `json:"augment_meta_data,omitempty"`
	ClearsProvides []string            `json:"clears_provides"`
	MetaData       json.RawMessage     `json:"meta_data,omitempty"`
	Files          []goldenFile        `json:"files"`
}

type goldenFile struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Augmented bool   `json:"augmented,omitempty"`
}

// TestGolden reads every golden Artifact with the keys it was signed with
// and compares the result with its .golden.json; payload files must equal
// the inputs they were made from.
func TestGolden(t *testing.T) {
	keys := map[string]string{
		"module-ecdsa.mender":    "ec.pub.pem",
		"rootfs-rsa-lzma.mender": "rsa.pub.pem",
		"augmented.mender":       "rsa.pub.pem",
	}
	arts, _ := filepath.Glob(filepath.Join(goldenDir, "*.mender"))
	if len(arts) == 0 {
		t.Fatal("no golden artifacts")
	}
	for _, path := range arts {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			art, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{AugmentTypes: []string{"dir-overlay"}}
			if k := keys[name]; k != "" {
				opts.Keys = []crypto.PublicKey{loadPub(t, filepath.Join(goldenDir, k))}
			}
			rec := &metaRecorder{recorder: newRecorder()}
			h, err := Read(bytes.NewReader(art), opts, nil, rec)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			got := goldenOf(h, rec)
			for _, f := range rec.files {
				want, err := os.ReadFile(filepath.Join(goldenDir, "inputs", f.Name))
				if err != nil || !bytes.Equal(rec.stored[f.Path], want) {
					t.Errorf("%s: stored bytes differ from inputs/%s (%v)", f.Path, f.Name, err)
				}
			}
			gotJSON, _ := json.MarshalIndent(got, "", "  ")
			gotJSON = append(gotJSON, '\n')
			goldenFile := strings.TrimSuffix(path, ".mender") + ".golden.json"
			if *update {
				if err := os.WriteFile(goldenFile, gotJSON, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantJSON, err := os.ReadFile(goldenFile)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(string(wantJSON), string(gotJSON)); d != "" {
				t.Errorf("%s (-want +got):\n%s", goldenFile, d)
			}
		})
	}
}

// metaRecorder also keeps each File.
type metaRecorder struct {
	*recorder
	files []*File
}

func (m *metaRecorder) Store(f *File, r io.Reader) error {
	m.files = append(m.files, f)
	return m.recorder.Store(f, r)
}

func goldenOf(h *Header, rec *metaRecorder) goldenSummary {
	g := goldenSummary{Name: h.Name, Group: h.Group, Depends: h.Depends, Signature: h.Signature.String(), HeaderMember: h.HeaderMember}
	for _, s := range h.Scripts {
		if g.Scripts == nil {
			g.Scripts = map[string]string{}
		}
		g.Scripts[s.Name] = fmt.Sprintf("%x", sha256sum(s.Data))
	}
	for _, p := range h.Payloads {
		gp := goldenPayload{Type: p.Type, Provides: p.Provides, Depends: p.Depends, ClearsProvides: p.ClearsProvides, MetaData: p.MetaData, Files: []goldenFile{}}
		if p.Augment != nil {
			gp.AugmentType, gp.AugmentDepends, gp.AugmentMeta = p.Augment.Type, p.Augment.Depends, p.Augment.MetaData
		}
		for _, f := range rec.files {
			if f.Payload == p.Index {
				gp.Files = append(gp.Files, goldenFile{Path: f.Path, Size: f.Size, SHA256: fmt.Sprintf("%x", f.Checksum), Augmented: f.Augmented})
			}
		}
		g.Payloads = append(g.Payloads, gp)
	}
	return g
}
