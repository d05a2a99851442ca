package selfupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/edgefort/edgefort/updater/module"
)

// install checks the new binary, keeps the current one as .previous and
// renames the new one over it. Re-running it after a crash at any point
// finishes the same install.
func (c *config) install(ctx context.Context, p module.Payload) error {
	st, err := loadStateFor(p.Tree, c.Binary)
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.Binary)

	if _, err := os.Lstat(c.newPath); errors.Is(err, fs.ErrNotExist) {
		// No .new: an earlier run may have renamed it already.
		return c.installedBefore(st)
	} else if err != nil {
		return err
	}

	if err := c.checkNotPackaged(ctx); err != nil {
		return err
	}
	got, err := hashHex(c.newPath)
	if err != nil {
		return fmt.Errorf("hash the new binary: %w", err)
	}
	if got != st.New {
		return fmt.Errorf("new binary %s has sha256 %s, the download recorded %s", c.newPath, short(got), short(st.New))
	}
	version, err := preflight(ctx, c.newPath)
	if err != nil {
		return err
	}
	c.log.Info("new agent binary passed its preflight", logKeyNew, c.newPath, "version", version)

	// Record the hash of what runs now before anything changes, once: a
	// re-run finds the binary unchanged as long as .new exists.
	if st.Old == "" {
		if st.Old, err = hashHex(c.Binary); err != nil {
			return fmt.Errorf("hash the current binary: %w", err)
		}
		if err := saveState(p.Tree, st); err != nil {
			return err
		}
	}
	if err := c.keepPrevious(st.Old); err != nil {
		return err
	}
	if err := os.Rename(c.newPath, c.Binary); err != nil {
		return fmt.Errorf("replace the binary: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	c.log.Info("installed new agent binary", logKeyBinary, c.Binary, logKeyNewHash, short(st.New),
		logKeyPrevious, c.prevPath, logKeyOldHash, short(st.Old))
	return nil
}

// installedBefore handles an install re-run that finds no .new file: fine
// when an earlier run got as far as the rename.
func (c *config) installedBefore(st state) error {
	got, err := hashHex(c.Binary)
	if err != nil {
		return fmt.Errorf("hash the current binary: %w", err)
	}
	if got != st.New || st.Old == "" {
		return fmt.Errorf("new binary %s is missing and %s is not the new binary (sha256 %s, want %s)", c.newPath, c.Binary, short(got), short(st.New))
	}
	if _, err := os.Lstat(c.prevPath); err != nil {
		return fmt.Errorf("the new binary is in place but the previous one is not kept: %w", err)
	}
	// The rename may not have been synced before the crash.
	if err := syncDir(filepath.Dir(c.Binary)); err != nil {
		return err
	}
	c.log.Info("new agent binary already installed", logKeyBinary, c.Binary, logKeyNewHash, short(st.New))
	return nil
}

// keepPrevious makes <binary>.previous hold the current binary, whose hash
// is old: a hard link built under a temporary name and renamed into place,
// or a synced copy where linking fails.
func (c *config) keepPrevious(old string) error {
	if fi, err := os.Lstat(c.prevPath); err == nil {
		if bi, err := os.Stat(c.Binary); err == nil && os.SameFile(fi, bi) {
			return nil // an earlier run linked it
		}
		if got, err := hashHex(c.prevPath); err == nil && got == old {
			return nil // an earlier run copied it
		}
	}
	if _, err := removeIfExists(c.prevTmp); err != nil {
		return fmt.Errorf("remove stale %s: %w", c.prevTmp, err)
	}
	how := "linked"
	if err := c.link(c.Binary, c.prevTmp); err != nil {
		c.log.Info("cannot hard link the current binary, copying it", logKeyBinary, c.Binary, "err", err)
		how = "copied"
		if err := copyFile(c.Binary, c.prevTmp); err != nil {
			os.Remove(c.prevTmp)
			return fmt.Errorf("keep the previous binary: %w", err)
		}
	}
	got, err := hashHex(c.prevTmp)
	if err != nil {
		os.Remove(c.prevTmp)
		return fmt.Errorf("keep the previous binary: %w", err)
	}
	if got != old {
		os.Remove(c.prevTmp)
		return fmt.Errorf("keep the previous binary: %s changed since install began (sha256 %s, recorded %s)", c.Binary, short(got), short(old))
	}
	if err := os.Rename(c.prevTmp, c.prevPath); err != nil {
		os.Remove(c.prevTmp)
		return fmt.Errorf("keep the previous binary: %w", err)
	}
	if err := syncDir(filepath.Dir(c.prevPath)); err != nil {
		return err
	}
	c.log.Info("kept the current agent binary", logKeyPrevious, c.prevPath, logKeyHash, short(old), "how", how)
	return nil
}

// copyFile copies src to a new file dst with src's permissions, synced.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(fi.Mode().Perm())
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// commit drops the kept previous binary.
func (c *config) commit() error {
	if err := c.dropTrial(); err != nil {
		return err
	}
	removed, err := removeIfExists(c.prevPath)
	if err != nil {
		return fmt.Errorf("remove the previous binary: %w", err)
	}
	if _, err := removeIfExists(c.prevTmp); err != nil {
		return fmt.Errorf("remove %s: %w", c.prevTmp, err)
	}
	if err := syncDir(filepath.Dir(c.Binary)); err != nil {
		return err
	}
	c.log.Info("committed the new agent binary", logKeyBinary, c.Binary, logKeyPrevious, c.prevPath, "removed_previous", removed)
	return nil
}

// rollback puts the previous binary back.
func (c *config) rollback(p module.Payload) error {
	if err := c.dropTrial(); err != nil {
		return err
	}
	st, err := loadState(p.Tree)
	if err != nil {
		return err
	}
	if st.Old == "" {
		// Install never got as far as recording the old binary, so it did
		// not touch it.
		c.log.Info("nothing to roll back: the binary was not replaced", logKeyBinary, c.Binary)
		return nil
	}
	if st.Binary != c.Binary {
		return fmt.Errorf("the update was installed to %s, but the binary is now %s", st.Binary, c.Binary)
	}
	dir := filepath.Dir(c.Binary)
	fi, err := os.Lstat(c.prevPath)
	if errors.Is(err, fs.ErrNotExist) {
		got, err := hashHex(c.Binary)
		if err != nil {
			return fmt.Errorf("previous binary %s is missing; hash the current binary: %w", c.prevPath, err)
		}
		if got != st.Old {
			return fmt.Errorf("cannot roll back: previous binary %s is missing and %s is not the old binary (sha256 %s, want %s)", c.prevPath, c.Binary, short(got), short(st.Old))
		}
		if err := syncDir(dir); err != nil {
			return err
		}
		c.log.Info("old agent binary already in place", logKeyBinary, c.Binary, logKeyOldHash, short(st.Old))
		return nil
	} else if err != nil {
		return err
	}
	got, err := hashHex(c.prevPath)
	if err != nil {
		return fmt.Errorf("hash the previous binary: %w", err)
	}
	if got != st.Old {
		return fmt.Errorf("cannot roll back: previous binary %s has sha256 %s, want the old %s", c.prevPath, short(got), short(st.Old))
	}
	// rename(2) between two links of one file does nothing, so when the
	// install stopped before replacing the binary just drop the link.
	if bi, err := os.Stat(c.Binary); err == nil && os.SameFile(fi, bi) {
		err = os.Remove(c.prevPath)
	} else {
		err = os.Rename(c.prevPath, c.Binary)
	}
	if err != nil {
		return fmt.Errorf("restore the previous binary: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	c.log.Info("rolled back to the old agent binary", logKeyBinary, c.Binary, logKeyPrevious, c.prevPath, logKeyOldHash, short(st.Old))
	return nil
}

// cleanup removes what an unfinished download or install left next to the
// binary. The tree is the caller's; .previous stays, as a failed rollback
// may still need it.
func (c *config) cleanup() error {
	var errs []error
	for _, path := range []string{c.newPath, c.prevTmp, TrialMarker(c.Binary)} {
		removed, err := removeIfExists(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
		} else if removed {
			c.log.Info("removed leftover file", "path", path)
		}
	}
	return errors.Join(errs...)
}
