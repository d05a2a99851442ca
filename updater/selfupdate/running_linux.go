package selfupdate

import (
	"fmt"
	"os"
)

// selfExe names the running executable's file even after it was replaced
// or removed on disk.
const selfExe = "/proc/self/exe"

// checkRunningExecutable reports whether this process runs the file at
// binary: the same inode, or failing that the same content (want).
func checkRunningExecutable(binary string, want [32]byte) error {
	self, err := os.Stat(selfExe)
	if err != nil {
		return fmt.Errorf("stat the running executable: %w", err)
	}
	bi, err := os.Stat(binary)
	if err != nil {
		return err
	}
	if os.SameFile(self, bi) {
		return nil
	}
	got, err := hashFile(selfExe)
	if err != nil {
		return fmt.Errorf("hash the running executable: %w", err)
	}
	if got != want {
		exe, _ := os.Readlink(selfExe)
		return fmt.Errorf("the running executable %s (sha256 %x) is not %s", exe, got[:6], binary)
	}
	return nil
}
