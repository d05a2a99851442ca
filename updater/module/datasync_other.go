//go:build !linux

package module

import "os"

// Datasync makes f's data durable.
func Datasync(f *os.File) error { return f.Sync() }
