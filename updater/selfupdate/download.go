package selfupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/module"
)

// download stores the payload's one file as <dir>/.<base>.new.
type download struct {
	c *config
	p module.Payload

	mu       sync.Mutex // guards the fields below
	started  bool       // Store was called
	stored   bool       // a file was stored completely and recorded
	finished bool       // Finish returned nil: the file is kept
	aborted  bool
	failed   error // the first Store error, returned by Finish
}

func (c *config) download(p module.Payload) (*download, error) {
	if err := os.MkdirAll(p.Tree, 0o700); err != nil {
		return nil, fmt.Errorf("selfupdate: Download: %w", err)
	}
	// A leftover from an earlier attempt must not pass for this payload.
	if _, err := removeIfExists(c.newPath); err != nil {
		return nil, fmt.Errorf("selfupdate: Download: remove stale %s: %w", c.newPath, err)
	}
	// Start the state afresh: no hash is recorded until the file is stored.
	if err := saveState(p.Tree, state{Binary: c.Binary}); err != nil {
		return nil, fmt.Errorf("selfupdate: Download: %w", err)
	}
	return &download{c: c, p: p}, nil
}

// Store streams f to the .new file and, once r's checksum has verified,
// records its SHA-256. On any error the .new file is removed.
func (d *download) Store(f *artifact.File, r io.Reader) error {
	d.mu.Lock()
	switch {
	case d.aborted:
		d.mu.Unlock()
		return errors.New("selfupdate: Download: aborted")
	case d.started:
		// Nothing is drained: the whole Artifact fails anyway.
		err := fmt.Errorf("selfupdate: Download: payload %d has more than one file (%s); an %s payload carries exactly one binary", d.p.Index, f.Name, Type)
		d.failLocked(err)
		d.mu.Unlock()
		return err
	}
	d.started = true
	d.mu.Unlock()

	err := d.store(f, r)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil && d.aborted {
		err = errors.New("aborted")
	}
	if err != nil {
		err = fmt.Errorf("selfupdate: Download: store %s: %w", f.Name, err)
		d.failLocked(err)
		return err
	}
	d.stored = true
	return nil
}

// failLocked records a failed Store and undoes what it left: the .new
// file and its recorded hash. d.mu must be held.
func (d *download) failLocked(err error) {
	if d.failed == nil {
		d.failed = err
	}
	d.stored = false
	if _, rerr := removeIfExists(d.c.newPath); rerr != nil {
		d.c.log.Warn("could not remove the new binary", logKeyNew, d.c.newPath, "err", rerr)
	}
	if serr := saveState(d.p.Tree, state{Binary: d.c.Binary}); serr != nil {
		d.c.log.Warn("could not reset the update state", logKeyTree, d.p.Tree, "err", serr)
	}
}

func (d *download) store(f *artifact.File, r io.Reader) error {
	c := d.c
	if f.Augmented {
		return errors.New("augmented (unsigned) files are not accepted for the agent binary")
	}
	out, err := os.OpenFile(c.newPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if err == nil {
		err = out.Chmod(0o755) // whatever the umask
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err // a checksum mismatch arrives here, wrapping artifact.ErrChecksum
	}
	// r returned io.EOF: its content matched f.Checksum, which is now
	// authentic. Our own hash of what we wrote must agree.
	if n == 0 {
		return errors.New("the file is empty")
	}
	var got [32]byte
	h.Sum(got[:0])
	if got != f.Checksum {
		return fmt.Errorf("wrote content with sha256 %x, the manifest has %x", got, f.Checksum)
	}
	if err := syncDir(filepath.Dir(c.newPath)); err != nil {
		return err
	}
	newHash := hex.EncodeToString(got[:])
	if err := saveState(d.p.Tree, state{Binary: c.Binary, New: newHash}); err != nil {
		return err
	}
	c.log.Info("stored new agent binary", logKeyNew, c.newPath, logKeyHash, short(newHash), "size", n)
	return nil
}

// Finish checks that a file was stored; there is nothing to wait for.
func (d *download) Finish(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.aborted:
		return errors.New("selfupdate: Download: aborted")
	case d.failed != nil:
		return d.failed
	case !d.stored:
		return fmt.Errorf("selfupdate: Download: payload %d has no file; an %s payload carries exactly one binary", d.p.Index, Type)
	}
	d.finished = true
	return nil
}

// Abort removes the .new file of a download that did not finish. After a
// successful Finish it does nothing: the file is what ArtifactInstall
// installs, and Cleanup removes it if it never is.
func (d *download) Abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished || d.aborted {
		return
	}
	d.aborted = true
	if removed, err := removeIfExists(d.c.newPath); err != nil {
		d.c.log.Warn("abort: could not remove the new binary", logKeyNew, d.c.newPath, "err", err)
	} else if removed {
		d.c.log.Info("download aborted, removed the new binary", logKeyNew, d.c.newPath)
	}
}

var _ module.Download = (*download)(nil)
