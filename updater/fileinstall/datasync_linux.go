package fileinstall

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data durable without its metadata timestamps.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
