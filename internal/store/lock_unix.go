//go:build unix && !aix

package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockDir takes an exclusive flock on dir/edgefort.lock without waiting and
// records our PID in it. flock belongs to the open file description, so a
// second Open in this process, which opens the file again, fails too.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := openFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open lock: %w", err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for errors.Is(err, unix.EINTR) {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		// No flag named here: which one moves the state directory (if any)
		// depends on the command, which adds it.
		return nil, fmt.Errorf("store: open %s: %w (pid %s, lock %s): stop that process or use another state directory",
			dir, ErrLocked, holderPID(path), path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	if err := writePID(f); err != nil {
		unlockDir(f)
		return nil, fmt.Errorf("store: write pid to %s: %w", path, err)
	}
	return f, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// holderPID reads the PID the lock holder wrote. It can be missing for a
// moment after the holder locked the file and before it wrote its PID.
func holderPID(path string) string {
	f, err := openFile(path, os.O_RDONLY, 0)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return "unknown"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "unknown"
	}
	return strconv.Itoa(pid)
}

// unlockDir releases the lock. The explicit LOCK_UN matters: a child being
// forked at this moment briefly shares the file description, and merely
// closing our descriptor would leave the lock held until it execs.
func unlockDir(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: unlock %s: %w", f.Name(), err)
	}
	return nil
}
