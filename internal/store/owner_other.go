//go:build !linux

package store

import (
	"fmt"
	"os"
	"runtime"
)

// ActAsOwner is Linux-only: elsewhere, root refuses to change a state
// directory another user owns rather than leave root-owned files in it.
func ActAsOwner(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil || ownerOf(fi) == 0 {
		return nil
	}
	return fmt.Errorf("store: state directory %s belongs to another user; on %s run this command as that user", dir, runtime.GOOS)
}
