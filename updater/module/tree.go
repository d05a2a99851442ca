package module

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/updater/artifact"
)

// TreeInfo is what PrepareTree writes.
type TreeInfo struct {
	// The device's current Artifact and its type, from the agent's store.
	CurrentArtifactName, CurrentArtifactGroup, DeviceType string
	// Header is the verified header of the Artifact being installed.
	// Required.
	Header *artifact.Header
	// Payload is the index into Header.Payloads of the payload this tree
	// is for.
	Payload int
}

// PrepareTree removes and recreates tree with the v3 file tree: version
// ("3"), current_artifact_name, current_artifact_group,
// current_device_type, header/{artifact_name, artifact_group,
// payload_type, header-info, type-info, meta-data}, header-augment/ (the
// augment's type-info and meta-data) when the payload has an Augment, and
// an empty tmp/. Every file and directory is synced to disk. The parent of
// tree must exist.
func PrepareTree(tree string, info TreeInfo) error {
	if err := prepareTree(tree, info); err != nil {
		return fmt.Errorf("prepare update module tree %s: %w", tree, err)
	}
	return nil
}

func prepareTree(tree string, info TreeInfo) error {
	h := info.Header
	if h == nil {
		return errors.New("no Artifact header given")
	}
	if info.Payload < 0 || info.Payload >= len(h.Payloads) {
		return fmt.Errorf("payload %d: the Artifact has %d payloads", info.Payload, len(h.Payloads))
	}
	p := &h.Payloads[info.Payload]
	if err := os.RemoveAll(tree); err != nil {
		return err
	}
	w := treeWriter{}
	w.dir(tree, 0o700)
	w.file(filepath.Join(tree, "version"), []byte("3"))
	w.file(filepath.Join(tree, "current_artifact_name"), []byte(info.CurrentArtifactName))
	w.file(filepath.Join(tree, "current_artifact_group"), []byte(info.CurrentArtifactGroup))
	w.file(filepath.Join(tree, "current_device_type"), []byte(info.DeviceType))

	hdir := filepath.Join(tree, "header")
	w.dir(hdir, 0o755)
	w.file(filepath.Join(hdir, "artifact_name"), []byte(h.Name))
	w.file(filepath.Join(hdir, "artifact_group"), []byte(h.Group))
	w.file(filepath.Join(hdir, "payload_type"), []byte(p.Type))
	w.file(filepath.Join(hdir, "header-info"), indentJSON(h.HeaderInfo))
	w.file(filepath.Join(hdir, "type-info"), indentJSON(p.TypeInfo))
	w.file(filepath.Join(hdir, "meta-data"), indentJSON(p.MetaData))
	w.sync(hdir)

	if a := p.Augment; a != nil {
		adir := filepath.Join(tree, "header-augment")
		w.dir(adir, 0o755)
		w.file(filepath.Join(adir, "payload_type"), []byte(a.Type))
		w.file(filepath.Join(adir, "type-info"), indentJSON(a.TypeInfo))
		w.file(filepath.Join(adir, "meta-data"), indentJSON(a.MetaData))
		w.sync(adir)
	}

	tmp := filepath.Join(tree, "tmp")
	w.dir(tmp, 0o755)
	w.sync(tmp)
	w.sync(tree)
	w.sync(filepath.Dir(tree))
	return w.err
}

// indentJSON re-indents raw JSON as the Go client does; empty or absent
// JSON becomes an empty object.
func indentJSON(raw []byte) []byte {
	if len(bytes.TrimSpace(raw)) == 0 {
		return []byte("{}")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return raw
	}
	return buf.Bytes()
}

// treeWriter creates files and directories, keeping the first error.
type treeWriter struct{ err error }

func (w *treeWriter) dir(path string, perm os.FileMode) {
	if w.err == nil {
		w.err = os.Mkdir(path, perm)
	}
}

func (w *treeWriter) file(path string, data []byte) {
	if w.err == nil {
		w.err = writeFileSync(path, data, 0o644)
	}
}

func (w *treeWriter) sync(dir string) {
	if w.err == nil {
		w.err = atomicfile.SyncDir(dir)
	}
}

// writeFileSync creates path with data and syncs it.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
