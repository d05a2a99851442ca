//go:build !linux

package selfupdate

import (
	"fmt"
	"os"
)

// checkRunningExecutable reports whether this process runs the file at
// binary. Without /proc/self/exe it compares the content (want) of the
// path os.Executable reports, which may already name a replaced file.
func checkRunningExecutable(binary string, want [32]byte) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the running executable: %w", err)
	}
	got, err := hashFile(exe)
	if err != nil {
		return fmt.Errorf("hash the running executable: %w", err)
	}
	if got != want {
		return fmt.Errorf("the running executable %s (sha256 %x) is not %s", exe, got[:6], binary)
	}
	return nil
}
