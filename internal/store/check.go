package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// maxCheckErrors bounds how many problems of a damaged file are reported.
const maxCheckErrors = 5

// invalid wraps ErrInvalidDatabase with the file, why, and what to do.
func invalid(path string, why error) error {
	return fmt.Errorf("store: open %s: %w: %w; it was left as it is: restore it from a backup, "+
		"or move it aside (mv %s %s.damaged) to start with empty state (the node must then enroll again)",
		path, ErrInvalidDatabase, why, path, path)
}

// openBolt opens a bbolt file, turning a panic inside bbolt (which it
// raises on some damaged pages) or a memory fault (reading a page past the
// end of a truncated file) into an error. Only this call and safeView are
// guarded: a panic anywhere else is a bug and must crash.
func openBolt(path string, o *bolt.Options) (bdb *bolt.DB, err error) {
	var file *os.File
	var openErr error
	open := o.OpenFile
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		file, openErr = open(name, flag, perm)
		return file, openErr
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// Closing the file releases bbolt's lock on it; the read-only
			// mapping bbolt made, if any, cannot be reached and stays.
			if file != nil {
				file.Close()
			}
			bdb, err = nil, invalid(path, fmt.Errorf("a page could not be read: %v", r))
		}
	}()
	bdb, err = bolt.Open(path, 0o600, o)
	switch {
	case err == nil:
		return bdb, nil
	case openErr != nil:
		return nil, fmt.Errorf("store: open %s: %w", path, openErr)
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("store: open %s: %w: database %s is locked by another process", filepath.Dir(path), ErrLocked, path)
	}
	return nil, invalid(path, err)
}

// safeView is bdb.View guarded like openBolt.
func safeView(path string, bdb *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = invalid(path, fmt.Errorf("a page could not be read: %v", r))
		}
	}()
	return bdb.View(fn)
}

// check opens the existing database at path read-only, so that nothing is
// written to a damaged file, and checks it: its size covers every page,
// bbolt's consistency check passes, and its buckets are the ones recorded.
// legacy reports a database made before buckets were recorded.
func check(path string) (legacy bool, err error) {
	bdb, err := openBolt(path, &bolt.Options{
		ReadOnly: true,
		Timeout:  boltTimeout,
		OpenFile: openFile,
	})
	if err != nil {
		return false, err
	}
	defer bdb.Close()
	err = safeView(path, bdb, func(tx *bolt.Tx) error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		// Checked first: bbolt's check reads every page, and a page past
		// the end of the file faults in a goroutine we cannot guard.
		if fi.Size() < tx.Size() {
			return invalid(path, fmt.Errorf("it is %d bytes long but its pages need %d: the file was truncated", fi.Size(), tx.Size()))
		}
		// bbolt's check runs in a goroutine of its own, where a read
		// through a damaged page header that lands outside the mapping
		// cannot be turned into an error. Read every key and value here
		// first, under safeView's guard, so that any such page fails here.
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walk(b, 0)
		}); err != nil {
			return invalid(path, err)
		}
		var errs []error
		for err := range tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return invalid(path, fmt.Errorf("consistency check: %w", errors.Join(errs...)))
		}
		legacy, err = checkSchema(tx)
		if err != nil {
			return invalid(path, err)
		}
		return nil
	})
	return legacy, err
}

// maxDepth bounds the nesting of buckets walk follows: the store makes no
// nested buckets, and damaged pages could point back at an ancestor.
const maxDepth = 4

// walk reads the first and last byte of every key and value in b, which
// faults if a damaged page header points them outside the file's mapping.
func walk(b *bolt.Bucket, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("buckets nest deeper than %d", maxDepth)
	}
	var sink byte
	touch := func(p []byte) {
		if len(p) > 0 {
			sink ^= p[0] ^ p[len(p)-1]
		}
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		touch(k)
		touch(v)
		if v == nil {
			nb := b.Bucket(k)
			if nb == nil {
				return fmt.Errorf("key %q has no value", k)
			}
			if err := walk(nb, depth+1); err != nil {
				return err
			}
		}
	}
	runtime.KeepAlive(sink) // the reads must happen
	return nil
}

// create makes a new, empty state database at path. It is initialised
// under a temporary name and renamed into place, so that a crash half-way
// leaves no state.db at all rather than an empty or partial one.
func create(dir, path string) error {
	tmp := filepath.Join(dir, newName)
	// A leftover from a creation that crashed never held any state.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: create %s: %w", path, err)
	}
	// Not openBolt: the file is new, so an error here is not damage.
	bdb, err := bolt.Open(tmp, 0o600, &bolt.Options{
		Timeout: boltTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return openFile(name, flag|os.O_EXCL, perm)
		},
	})
	if err != nil {
		return fmt.Errorf("store: create %s: %w", path, err)
	}
	err = bdb.Update(initSchema)
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: create %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
