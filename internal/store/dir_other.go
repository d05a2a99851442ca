//go:build !unix

package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// noFollow: this OS has no O_NOFOLLOW; the lock is unsupported here anyway
// (see lock_other.go), so Open fails before it opens a file.
const noFollow = 0

func prepareDir(dir string, _ *slog.Logger) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store: create state directory: %w", err)
		}
	}
	return nil
}

func ownerOf(os.FileInfo) int { return 0 }
