// Package fileinstall is the built-in installer for payload type
// "edgefort-file": one file put in place at the path the payload's
// meta-data names, with rollback to the previous file.
//
// It does in process what the stock single-file update module does with a
// shell script, but streams: the payload is written into the destination's
// directory while the Artifact is read and hashed (the two overlap), and
// flushed to disk in the background every 64 MiB (see module.Flusher), so that
// the final fsync finds little left to write. Nothing is visible
// at the destination before ArtifactInstall, and the Artifact reader only
// lets the state machine go on once every checksum matched.
//
// The payload's meta-data (headers/NNNN/meta-data, covered by the
// signature) says where the file goes:
//
//	{"path": "/opt/app/model.bin", "mode": "0644"}
//
// path must be absolute; mode (octal, default 0644) is applied before the
// file is renamed into place.
package fileinstall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/module"
)

// Type is the payload type this installer takes.
const Type = "edgefort-file"

// Suffixes of the files kept beside the destination, in its directory so
// that renames are atomic.
const (
	newSuffix      = ".edgefort-new"
	previousSuffix = ".edgefort-previous"
	stateFile      = "edgefort-file.json" // in the payload tree
)

// Installer installs edgefort-file payloads.
type Installer struct {
	Logger *slog.Logger
}

var _ module.Installer = (*Installer)(nil)

// target is what the meta-data asks for.
type target struct {
	Path string `json:"path"`
	Mode string `json:"mode"`
}

// state is kept in the payload tree between steps (and restarts).
type state struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"` // a file was at Path before the install
}

func (i *Installer) log() *slog.Logger {
	if i.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return i.Logger
}

// readTarget reads and checks the payload's meta-data from its tree.
func readTarget(p module.Payload) (target, os.FileMode, error) {
	var t target
	b, err := os.ReadFile(filepath.Join(p.Tree, "header", "meta-data"))
	if err != nil {
		return t, 0, fmt.Errorf("%s: read meta-data: %w", Type, err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, 0, fmt.Errorf("%s: meta-data: %w", Type, err)
	}
	if t.Path == "" || !filepath.IsAbs(t.Path) || filepath.Clean(t.Path) != t.Path || t.Path == "/" {
		return t, 0, fmt.Errorf(`%s: meta-data "path" must be a clean absolute file path, got %q`, Type, t.Path)
	}
	mode := os.FileMode(0o644)
	if t.Mode != "" {
		m, err := strconv.ParseUint(t.Mode, 8, 32)
		if err != nil || m > 0o7777 {
			return t, 0, fmt.Errorf(`%s: meta-data "mode" %q is not an octal file mode`, Type, t.Mode)
		}
		mode = os.FileMode(m)
	}
	return t, mode, nil
}

func sibling(path, suffix string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+suffix)
}

func saveState(p module.Payload, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(p.Tree, stateFile), b, 0o600)
}

func loadState(p module.Payload) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(p.Tree, stateFile))
	if err != nil {
		return st, fmt.Errorf("%s: no record of the download: %w", Type, err)
	}
	return st, json.Unmarshal(b, &st)
}

// Download checks the meta-data and returns the session that streams the
// payload file next to its destination.
func (i *Installer) Download(ctx context.Context, p module.Payload) (module.Download, error) {
	t, mode, err := readTarget(p)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(t.Path), 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", Type, err)
	}
	_, statErr := os.Lstat(t.Path)
	if err := saveState(p, state{Path: t.Path, Existed: statErr == nil}); err != nil {
		return nil, fmt.Errorf("%s: %w", Type, err)
	}
	return &download{i: i, path: t.Path, mode: mode}, nil
}

type download struct {
	i     *Installer
	path  string
	mode  os.FileMode
	files int
	err   error // first failure; Finish returns it
	done  bool  // Finish succeeded
}

func (d *download) Store(f *artifact.File, r io.Reader) error {
	if d.err != nil {
		return d.err
	}
	d.files++
	if d.files > 1 {
		d.err = fmt.Errorf("%s: the payload has more than one file (%s)", Type, f.Name)
		d.removeNew()
		return d.err
	}
	d.err = d.write(r)
	if d.err != nil {
		d.removeNew()
	}
	return d.err
}

// write streams r into the new file, flushed in the background as it goes,
// then makes it durable with the final mode.
func (d *download) write(r io.Reader) error {
	tmp := sibling(d.path, newSuffix)
	os.Remove(tmp) // a leftover of an interrupted run
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", Type, err)
	}
	fl := module.NewFlusher(out)
	werr, rerr := module.Copy(fl, r)
	if ferr := fl.Close(); werr == nil {
		werr = ferr
	}
	if rerr != nil {
		out.Close()
		return rerr // the Artifact's reader: checksum or read error
	}
	if werr == nil {
		werr = out.Chmod(d.mode)
	}
	if werr == nil {
		werr = out.Sync()
	}
	if cerr := out.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = atomicfile.SyncDir(filepath.Dir(d.path))
	}
	if werr != nil {
		return fmt.Errorf("%s: write %s: %w", Type, tmp, werr)
	}
	return nil
}

func (d *download) removeNew() { os.Remove(sibling(d.path, newSuffix)) }

func (d *download) Finish(context.Context) error {
	if d.err != nil {
		return d.err
	}
	if d.files == 0 {
		d.err = fmt.Errorf("%s: the payload has no file", Type)
		return d.err
	}
	d.done = true
	return nil
}

func (d *download) Abort() {
	if !d.done {
		d.removeNew()
	}
}

// Query answers the module queries: rollback is supported, no reboot.
func (i *Installer) Query(_ context.Context, _ module.Payload, query string) (string, error) {
	switch query {
	case module.QuerySupportsRollback:
		return "Yes", nil
	case module.QueryNeedsArtifactReboot:
		return "No", nil
	}
	return "", nil
}

// Call runs one state. Every step can run again after a crash.
func (i *Installer) Call(_ context.Context, p module.Payload, st string) error {
	switch st {
	case module.StateArtifactInstall:
		return i.install(p)
	case module.StateArtifactCommit:
		return i.commit(p)
	case module.StateArtifactRollback:
		return i.rollback(p)
	case module.StateCleanup:
		if s, err := loadState(p); err == nil {
			os.Remove(sibling(s.Path, newSuffix))
		}
	}
	return nil
}

func (i *Installer) install(p module.Payload) error {
	s, err := loadState(p)
	if err != nil {
		return err
	}
	newPath, prev := sibling(s.Path, newSuffix), sibling(s.Path, previousSuffix)
	if _, err := os.Stat(newPath); errors.Is(err, os.ErrNotExist) {
		// Renamed already by a run that crashed after it.
		if _, err := os.Stat(s.Path); err == nil {
			return nil
		}
		return fmt.Errorf("%s: ArtifactInstall: %s is gone and %s is not there", Type, newPath, s.Path)
	}
	if s.Existed {
		if _, err := os.Lstat(prev); errors.Is(err, os.ErrNotExist) {
			// Keep the current file as the way back: a hard link, so
			// that the rename below never leaves the path empty.
			if err := os.Link(s.Path, prev); err != nil {
				return fmt.Errorf("%s: keep the previous file: %w", Type, err)
			}
		}
	}
	if err := os.Rename(newPath, s.Path); err != nil {
		return fmt.Errorf("%s: ArtifactInstall: %w", Type, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(s.Path)); err != nil {
		return fmt.Errorf("%s: ArtifactInstall: %w", Type, err)
	}
	i.log().Info("file installed", "path", s.Path, "previous_kept", s.Existed)
	return nil
}

func (i *Installer) commit(p module.Payload) error {
	s, err := loadState(p)
	if err != nil {
		return err
	}
	if err := os.Remove(sibling(s.Path, previousSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: ArtifactCommit: %w", Type, err)
	}
	return atomicfile.SyncDir(filepath.Dir(s.Path))
}

func (i *Installer) rollback(p module.Payload) error {
	s, err := loadState(p)
	if err != nil {
		// Nothing was downloaded, so nothing was installed.
		return nil
	}
	prev := sibling(s.Path, previousSuffix)
	os.Remove(sibling(s.Path, newSuffix))
	switch {
	case s.Existed:
		if _, err := os.Lstat(prev); errors.Is(err, os.ErrNotExist) {
			// Never installed (or rolled back already): the old file is
			// where it was.
			return nil
		}
		if err := os.Rename(prev, s.Path); err != nil {
			return fmt.Errorf("%s: ArtifactRollback: %w", Type, err)
		}
		// When the install never renamed, prev and the path are two links
		// to the old file and rename(2) leaves both: drop the spare one.
		if err := os.Remove(prev); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: ArtifactRollback: %w", Type, err)
		}
	default:
		// There was no file before: the way back is none.
		if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: ArtifactRollback: %w", Type, err)
		}
	}
	i.log().Info("file rolled back", "path", s.Path)
	return atomicfile.SyncDir(filepath.Dir(s.Path))
}
