package module

import (
	"os"

	"golang.org/x/sys/unix"
)

// Datasync makes f's data durable without its metadata timestamps.
func Datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
