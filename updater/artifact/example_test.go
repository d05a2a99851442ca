package artifact_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/edgefort/edgefort/updater/artifact"
)

// stagingInstaller shows the safe pattern: Store writes each file under a
// partial name in a staging directory; Verified, which comes only once the
// whole Artifact checked out, renames it to its staged name. Nothing is
// activated here; that is the ArtifactInstall step's job, after Read
// returned nil.
type stagingInstaller struct{ dir string }

func (s stagingInstaller) Store(f *artifact.File, r io.Reader) error {
	out, err := os.Create(filepath.Join(s.dir, ".partial-"+f.Name))
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, r); err != nil {
		return err // includes a checksum mismatch at the end of r
	}
	return out.Sync()
}

func (s stagingInstaller) Verified(f *artifact.File) error {
	return os.Rename(filepath.Join(s.dir, ".partial-"+f.Name), filepath.Join(s.dir, f.Name))
}

func ExampleRead() {
	var art bytes.Buffer
	err := artifact.Write(&art, &artifact.Spec{
		Name:     "app-v2",
		Depends:  artifact.Depends{DeviceTypes: []string{"edge-1"}},
		Payloads: []artifact.PayloadSpec{withFile(artifact.ModuleImage("single-file", "app-v2", artifact.ImageDefaults{}), "app.conf", "x=1\n")},
	})
	if err != nil {
		panic(err)
	}

	dir, _ := os.MkdirTemp("", "staging")
	defer os.RemoveAll(dir)
	device := artifact.Provides{artifact.ProvidesName: "app-v1"}
	check := func(h *artifact.Header) error { return artifact.CheckDepends("edge-1", device, h) }

	h, err := artifact.Read(&art, artifact.Options{}, check, stagingInstaller{dir})
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	staged, _ := os.ReadFile(filepath.Join(dir, "app.conf"))
	fmt.Printf("staged %q for %s\n", staged, h.Name)
	fmt.Println("provides after commit:", artifact.NewProvides(device, h))
	// Output:
	// staged "x=1\n" for app-v2
	// provides after commit: map[artifact_name:app-v2 rootfs-image.single-file.version:app-v2]
}

func withFile(p artifact.PayloadSpec, name, content string) artifact.PayloadSpec {
	p.Files = append(p.Files, artifact.Source{Name: name, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader([]byte(content))), nil
	}})
	return p
}
