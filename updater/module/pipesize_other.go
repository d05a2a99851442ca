//go:build !linux

package module

import "os"

// growPipe leaves the pipe's size as it is: F_SETPIPE_SZ is Linux's.
func growPipe(*os.File, int) error { return nil }
