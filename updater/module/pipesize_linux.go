package module

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// growPipe asks the kernel to make the pipe f writes to hold size bytes
// (F_SETPIPE_SZ). An unprivileged process gets at most
// /proc/sys/fs/pipe-max-size (1 MiB by default), and less once its user's
// pipes hold more than fs.pipe-user-pages-soft: the caller treats failure
// as leaving the default size.
func growPipe(f *os.File, size int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { _, serr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set the pipe size to %d bytes: %w", size, serr)
	}
	return nil
}
