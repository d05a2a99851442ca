package updater

import (
	"errors"
	"slices"
	"testing"
)

func FuzzCheckContentRange(f *testing.F) {
	f.Add("bytes 10-99/100", int64(10), int64(100))
	f.Add("bytes 0-0/1", int64(0), int64(1))
	f.Add("bytes -5-99/100", int64(10), int64(100))
	f.Fuzz(func(t *testing.T, v string, off, size int64) {
		start, err := checkContentRange(v, off, size)
		if err != nil {
			if !errors.Is(err, ErrBadRange) {
				t.Fatalf("error %v is not ErrBadRange", err)
			}
			return
		}
		if start < 0 || start > off {
			t.Fatalf("accepted start %d for offset %d", start, off)
		}
	})
}

// FuzzParseDeployment feeds next-deployment replies to the parser. Seeds
// are the reply shapes in ../shared/reference/mender.md §2.3 (the Go
// client's capture, with the Enterprise update control map and the newer
// source.method and source.header).
func FuzzParseDeployment(f *testing.F) {
	f.Add([]byte(`{"id":"8f1b4a2e-6c3d-4e5f-9a0b-1c2d3e4f5a6b","artifact":{"id":"a1b2c3d4-0000-4000-8000-000000000001","artifact_name":"mod-big-v1","source":{"uri":"https://s3.example.com/mender-artifact-storage/a1b2?X-Amz-Signature=abc","expire":"2026-11-24T03:41:14Z"},"device_types_compatible":["qemux86-64"]}}`), "qemux86-64")
	f.Add([]byte(`{"id":"d1","artifact":{"artifact_name":"rel-2","source":{"uri":"https://h/a","expire":"2026-11-24T00:00:00Z","method":"GET","header":{"x-ms-blob-type":"BlockBlob"}},"device_types_compatible":["arm","edge-x86"]},"update_control_map":{"id":"d1","priority":0,"states":{"ArtifactInstall_Enter":{"action":"pause"}}}}`), "edge-x86")
	f.Add([]byte(`{"id":"d1","artifact":{"artifact_name":"rel-2","source":{"uri":"https://h/a"},"device_types_compatible":["arm"]}}`), "edge-x86")
	f.Add([]byte(`{"id":"d1","artifact":{"artifact_name":"","source":{"uri":""},"device_types_compatible":[]}} {}`), "x")
	f.Add([]byte(`{"id":"d1","artifact":{"source":{"expire":"not a time"}}}`), "x")
	f.Add([]byte(`null`), "x")
	f.Add([]byte(`[`), "x")
	f.Fuzz(func(t *testing.T, b []byte, deviceType string) {
		d, err := parseDeployment(b, deviceType)
		if err != nil {
			if d != nil {
				t.Fatalf("error %v with a deployment", err)
			}
			return
		}
		switch {
		case d.ID == "" || len(d.ID) > maxDeploymentID:
			t.Fatalf("accepted id of %d bytes", len(d.ID))
		case d.ArtifactName == "" || len(d.ArtifactName) > maxArtifactName:
			t.Fatalf("accepted artifact name of %d bytes", len(d.ArtifactName))
		case d.URI == "" || len(d.URI) > maxDownloadURI:
			t.Fatalf("accepted download link of %d bytes", len(d.URI))
		case len(d.DeviceTypes) > maxDeviceTypes || !slices.Contains(d.DeviceTypes, deviceType):
			t.Fatalf("accepted device types %q for %q", d.DeviceTypes, deviceType)
		}
		for _, dt := range d.DeviceTypes {
			if len(dt) > maxDeviceType {
				t.Fatalf("accepted a device type of %d bytes", len(dt))
			}
		}
	})
}
