package testkit

import (
	"bytes"
	"io"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact"
)

// Artifact describes a small module-image Artifact, written in memory by
// Bytes with edgefort's own writer.
type Artifact struct {
	// Name is the Artifact name; the payload provides
	// rootfs-image.<Module>.version with it. Required.
	Name string
	// DeviceType is the one device type it is compatible with. Required.
	DeviceType string
	// Module is the update module, e.g. "single-file". Required.
	Module string
	// Files are the payload files, in order.
	Files []File
	// Scripts are state scripts.
	Scripts []artifact.Script
	// Compression of the members. The zero value is gzip, as in
	// mender-artifact.
	Compression artifact.Compression
	// Edit, if set, makes last changes to the spec before it is written.
	Edit func(*artifact.Spec)
}

// File is one payload file.
type File struct {
	Name string
	Data []byte
}

// SingleFile is an Artifact for Mender's stock single-file update module
// that installs content as dest/filename with mode 0644.
func SingleFile(name, deviceType, dest, filename string, content []byte) Artifact {
	return Artifact{
		Name: name, DeviceType: deviceType, Module: "single-file",
		Files: []File{
			{filename, content},
			{"dest_dir", []byte(dest)},
			{"filename", []byte(filename)},
			{"permissions", []byte("0644")},
		},
	}
}

// Bytes writes the Artifact, failing the test on error.
func (a Artifact) Bytes(t testing.TB) []byte {
	t.Helper()
	p := artifact.ModuleImage(a.Module, a.Name, artifact.ImageDefaults{})
	for _, f := range a.Files {
		p.Files = append(p.Files, Source(f.Name, f.Data))
	}
	spec := &artifact.Spec{
		Name:        a.Name,
		Depends:     artifact.Depends{DeviceTypes: []string{a.DeviceType}},
		Payloads:    []artifact.PayloadSpec{p},
		Scripts:     a.Scripts,
		Compression: a.Compression,
	}
	if a.Edit != nil {
		a.Edit(spec)
	}
	var buf bytes.Buffer
	if err := artifact.Write(&buf, spec); err != nil {
		t.Fatalf("write artifact %q: %v", a.Name, err)
		return nil // only for a TB whose Fatalf returns
	}
	return buf.Bytes()
}

// Source is an artifact.Source named name that serves data.
func Source(name string, data []byte) artifact.Source {
	return artifact.Source{Name: name, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}}
}
