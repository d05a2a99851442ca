//go:build !unix || aix

package store

import (
	"fmt"
	"os"
	"runtime"
)

// lockDir fails: the state directory lock needs flock, which this OS lacks
// (or golang.org/x/sys/unix does not offer on it).
func lockDir(dir string) (*os.File, error) {
	return nil, fmt.Errorf("store: lock %s: locking the state directory is not supported on %s", dir, runtime.GOOS)
}

func unlockDir(f *os.File) error { return f.Close() }
