package rootfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCache asks the kernel to drop f's first n bytes from the page cache
// (they are clean after an fsync), so that a read-back reads the disk and
// a 1 GiB image does not crowd out the running system's cache.
func dropCache(f *os.File, n int64) {
	_ = unix.Fadvise(int(f.Fd()), 0, n, unix.FADV_DONTNEED) // advice only
}
