//go:build unix

package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// noFollow is added to every open of a file in the state directory: a
// symbolic link planted there must not make a root process write (or read)
// the file it points to.
const noFollow = unix.O_NOFOLLOW

// prepareDir creates dir with mode 0700 if it is missing, and makes sure
// nobody but the agent's own user (or root) can change what is in it.
//
// A directory owned by this process's effective user or by root but open to
// group or others is tightened to 0700 with a warning, so that a node
// upgraded in place keeps working. A directory owned by any other user is
// refused: that user could swap the files under us, and chmod would not take
// the directory away from them.
func prepareDir(dir string, logger *slog.Logger) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store: create state directory: %w", err)
		}
	}
	// Work on an open descriptor, so the directory checked is the one
	// changed even if the path is swapped meanwhile.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: state directory: %w", err)
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return fmt.Errorf("store: state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store: state directory %s is not a directory", dir)
	}
	owner := ownerOf(fi)
	if euid := os.Geteuid(); owner != euid && owner != 0 {
		return fmt.Errorf("store: state directory %s is owned by uid %d, not by this process's user (uid %d) or root; "+
			"refusing it, since its owner could change the agent's state: chown it to the agent's user, or run as uid %d",
			dir, owner, euid, owner)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if err := d.Chmod(0o700); err != nil {
		return fmt.Errorf("store: state directory %s is open to group or others (mode %v) and could not be made private: %w", dir, perm, err)
	}
	if logger != nil {
		logger.Warn("state directory was open to group or others; changed its mode to 0700",
			logKeyDir, dir, logKeyMode, perm.String())
	}
	return nil
}

// ownerOf returns the uid that owns fi.
func ownerOf(fi os.FileInfo) int { return int(fi.Sys().(*syscall.Stat_t).Uid) }
