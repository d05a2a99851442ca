package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openFile opens a file in the state directory with O_NOFOLLOW added, so a
// symbolic link planted in its place is refused rather than followed, and
// makes sure what it opened is a regular file (not a FIFO or a device).
func openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|noFollow, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link; refusing to follow it (remove the link): %w", path, err)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
