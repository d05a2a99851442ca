package module

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/google/go-cmp/cmp"
)

// readTree returns every file (content) and directory ("<dir>") under root.
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			got[rel] = "<dir>"
			return nil
		}
		data, err := os.ReadFile(path)
		got[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPrepareTree(t *testing.T) {
	plain := testHeader("single-file")
	plain.Group = ""
	plain.Payloads[0].MetaData = nil

	augmented := testHeader("single-file")
	augmented.Payloads = append(augmented.Payloads, artifact.Payload{
		Index:    1,
		Type:     "rootfs-image",
		TypeInfo: []byte(`{"type":"rootfs-image"}`),
		Augment: &artifact.Augment{
			Type:     "rootfs-delta",
			TypeInfo: []byte(`{"type":"rootfs-delta"}`),
			MetaData: []byte(`{"base":"x"}`),
		},
	})

	wantHeaderInfo := `{
  "payloads": [
    {
      "type": "single-file"
    }
  ],
  "artifact_provides": {
    "artifact_name": "release-2",
    "artifact_group": "prod"
  },
  "artifact_depends": {
    "device_type": [
      "qemu"
    ]
  }
}`
	common := map[string]string{
		"version":                "3",
		"current_artifact_name":  "release-1",
		"current_artifact_group": "",
		"current_device_type":    "qemu",
		"header":                 "<dir>",
		"header/artifact_name":   "release-2",
		"header/header-info":     wantHeaderInfo,
		"tmp":                    "<dir>",
	}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range common {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		header  *artifact.Header
		payload int
		want    map[string]string
		wantErr bool
	}{
		{
			name:   "plain payload",
			header: plain,
			want: with(map[string]string{
				"header/artifact_group": "",
				"header/payload_type":   "single-file",
				"header/type-info":      "{\n  \"type\": \"single-file\",\n  \"artifact_provides\": {\n    \"rootfs-image.single-file.version\": \"2\"\n  }\n}",
				"header/meta-data":      "{}",
			}),
		},
		{
			name:    "augmented payload",
			header:  augmented,
			payload: 1,
			want: with(map[string]string{
				"header/artifact_group":       "prod",
				"header/payload_type":         "rootfs-image",
				"header/type-info":            "{\n  \"type\": \"rootfs-image\"\n}",
				"header/meta-data":            "{}",
				"header-augment":              "<dir>",
				"header-augment/payload_type": "rootfs-delta",
				"header-augment/type-info":    "{\n  \"type\": \"rootfs-delta\"\n}",
				"header-augment/meta-data":    "{\n  \"base\": \"x\"\n}",
			}),
		},
		{name: "payload out of range", header: plain, payload: 1, wantErr: true},
		{name: "no header", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := filepath.Join(t.TempDir(), "tree")
			// A previous update's leftovers must go.
			if err := os.MkdirAll(filepath.Join(tree, "files"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tree, "files", "old"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := PrepareTree(tree, TreeInfo{
				CurrentArtifactName: "release-1",
				DeviceType:          "qemu",
				Header:              tt.header,
				Payload:             tt.payload,
			})
			if tt.wantErr {
				if err == nil {
					t.Fatal("PrepareTree succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, readTree(t, tree)); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}
		})
	}
}
