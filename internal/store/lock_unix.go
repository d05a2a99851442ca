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
	"time"

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
	err = tryLock(f)
	for deadline := time.Now().Add(lockWait); errors.Is(err, unix.EWOULDBLOCK) && time.Now().Before(deadline); {
		if lockBusyHook != nil {
			lockBusyHook()
		}
		time.Sleep(lockPoll)
		err = tryLock(f)
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

// A held lock is tried again for lockWait before Open gives up. When an
// agent is killed while it forks a module or script, the child holds a
// copy of the lock's descriptor until its exec closes it (close-on-exec),
// a moment after the agent's own death; an agent restarted at once (by
// systemd, or a test) would otherwise find its state directory locked by
// a process that is gone.
const (
	lockWait = time.Second
	lockPoll = 20 * time.Millisecond
)

// lockBusyHook, when set (by tests), runs each time the lock is found held.
var lockBusyHook func()

func tryLock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for errors.Is(err, unix.EINTR) {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	return err
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
