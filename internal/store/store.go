// Package store is the agent's one embedded state database: a bbolt file,
// state.db, under the state directory, holding everything that must survive a
// crash or power loss (a deployment in progress, the outbox of reports and job
// updates, tickets and sessions, a key rotation in progress).
//
// Each component owns one top-level bucket, reached with [DB.Bucket]. Keys are
// strings, values are JSON. [DB.Update] groups writes to several buckets into
// one atomic transaction.
//
// Durability: a Put, Delete or Update returns only after its transaction has
// been committed and fsynced, so a write that has returned survives the
// process being killed and the machine losing power (as far as the disk
// honours flushes). A crash mid-write leaves the transaction either wholly
// applied or not at all.
//
// A damaged state.db is never reset: Open checks the whole file (bbolt's
// consistency check, its size, and the record of the buckets written so
// far, so that a damaged bucket name does not read as an empty bucket) and
// refuses it with [ErrInvalidDatabase], leaving it as it is. A new state.db
// is made under a temporary name and renamed into place once initialised,
// so an empty state.db always means damage.
//
// Only the agent's own user (or root) may own the state directory, which
// Open makes private (0700); every file in it is opened without following
// symbolic links (see dir_unix.go).
//
// One process owns the state directory at a time: [Open] takes an exclusive
// lock on edgefort.lock and fails at once with [ErrLocked] if another
// process, or another Open in this one, holds it.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrLocked reports that another edgefort process (or another Open in this
// process) holds the state directory. Open wraps it with the directory, the
// holder's PID and the lock file.
var ErrLocked = errors.New("state directory is in use by another edgefort process")

// ErrInvalidDatabase reports that state.db is damaged or not a state
// database at all. Open wraps it with the file and what to do about it.
var ErrInvalidDatabase = errors.New("not a valid state database")

const (
	dbName   = "state.db"
	lockName = "edgefort.lock"
	// newName is where create initialises a new database before renaming
	// it to dbName.
	newName = dbName + ".new"

	// boltTimeout bounds bbolt's own lock on state.db. Our lock on
	// edgefort.lock is taken first and never waits, so this only matters if
	// something other than edgefort (a bbolt CLI, say) holds the file.
	boltTimeout = time.Second

	logKeyDir  = "dir"
	logKeyMode = "mode"
	logKeyPath = "path"
)

// Options configures Open. The zero value is valid.
type Options struct {
	// Logger receives warnings, such as a state directory that was open
	// to group or others and has been made private. Optional: nil logs
	// nothing.
	Logger *slog.Logger
}

// DB is the open state database. Its methods are safe for concurrent use,
// except Close, which must be called once no other call is in flight.
type DB struct {
	path string
	bolt *bolt.DB
	lock *os.File // holds the flock on edgefort.lock; nil once closed
}

// Open opens, creating if needed, the state database in dir. It creates dir
// with mode 0700 if it is missing and the database with mode 0600. It fails
// immediately, with an error wrapping ErrLocked, if the directory is in use,
// and with one wrapping ErrInvalidDatabase, leaving the file as it is, if
// state.db is damaged; see the package comment.
func Open(dir string, opts Options) (*DB, error) {
	if err := prepareDir(dir, opts.Logger); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	db, err := openDB(dir, opts.Logger)
	if err != nil {
		unlockDir(lock)
		return nil, err
	}
	db.lock = lock
	return db, nil
}

// openDB opens state.db, creating it if it does not exist, once it has
// passed the checks in check.go. The caller holds the directory's lock.
func openDB(dir string, logger *slog.Logger) (*DB, error) {
	path := filepath.Join(dir, dbName)
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := create(dir, path); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	case fi.Mode().Type() == os.ModeSymlink:
		return nil, fmt.Errorf("store: open %s: it is a symbolic link; refusing to follow it (remove the link)", path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("store: open %s: not a regular file (%v)", path, fi.Mode().Type())
	case fi.Size() == 0:
		// bbolt would silently make a new database in an empty file; an
		// existing empty state.db means state was lost (we never leave
		// one behind: see create), so say so instead.
		return nil, invalid(path, errors.New("the file is empty (0 bytes)"))
	}
	legacy, err := check(path)
	if err != nil {
		return nil, err
	}
	bdb, err := openBolt(path, &bolt.Options{
		Timeout: boltTimeout,
		// NoSync must stay false: bbolt then fdatasyncs the data pages and
		// the meta page on every commit, and Commit returns only after both,
		// which is what lets Put promise that a returned write is durable.
		NoSync: false,
		// state.db was checked above: never create it here.
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return openFile(name, flag&^os.O_CREATE, perm)
		},
	})
	if err != nil {
		return nil, err
	}
	if legacy {
		if err := bdb.Update(adoptSchema); err != nil {
			bdb.Close()
			return nil, fmt.Errorf("store: open %s: record its buckets: %w", path, err)
		}
		if logger != nil {
			logger.Info("recorded the buckets of a state database made by an earlier edgefort", logKeyPath, path)
		}
	}
	return &DB{path: path, bolt: bdb}, nil
}

// Close closes the database and releases the state directory. The lock file
// is left in place: deleting it would let a second process lock a new file
// while a third still holds the old one. Close after Close returns nil.
func (db *DB) Close() error {
	if db.lock == nil {
		return nil
	}
	err := db.bolt.Close()
	if err != nil {
		err = fmt.Errorf("store: close %s: %w", db.path, err)
	}
	err = errors.Join(err, unlockDir(db.lock))
	db.lock = nil
	return err
}

// Path returns the path of the database file.
func (db *DB) Path() string { return db.path }

// Update runs fn in one read-write transaction across buckets and commits it
// durably. If fn returns an error (returned as is) or panics, nothing fn
// wrote is kept. The Tx must not be used after fn returns.
func (db *DB) Update(fn func(tx *Tx) error) error {
	var fnErr error
	err := db.bolt.Update(func(btx *bolt.Tx) error {
		fnErr = fn(&Tx{tx: btx})
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("store: update: %w", err)
	}
	return nil
}

// View runs fn in a read-only transaction that sees one consistent snapshot.
// Writes inside it fail. fn's error is returned as is.
func (db *DB) View(fn func(tx *Tx) error) error {
	var fnErr error
	err := db.bolt.View(func(btx *bolt.Tx) error {
		fnErr = fn(&Tx{tx: btx})
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("store: view: %w", err)
	}
	return nil
}

// Tx is a transaction passed to the function given to Update or View.
type Tx struct {
	tx *bolt.Tx
}

// Bucket returns the named bucket within the transaction.
func (tx *Tx) Bucket(name string) *TxBucket {
	return &TxBucket{tx: tx.tx, name: name}
}
