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
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked reports that another edgefort process (or another Open in this
// process) holds the state directory. Open wraps it with the directory, the
// holder's PID and the lock file.
var ErrLocked = errors.New("state directory is in use by another edgefort process")

const (
	dbName   = "state.db"
	lockName = "edgefort.lock"

	// boltTimeout bounds bbolt's own lock on state.db. Our lock on
	// edgefort.lock is taken first and never waits, so this only matters if
	// something other than edgefort (a bbolt CLI, say) holds the file.
	boltTimeout = time.Second

	logKeyDir  = "dir"
	logKeyMode = "mode"
)

// Options configures Open. The zero value is valid.
type Options struct {
	// Logger receives warnings, such as an unsafely writable state
	// directory. Optional: nil logs nothing.
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
// immediately, with an error wrapping ErrLocked, if the directory is in use.
func Open(dir string, opts Options) (*DB, error) {
	if err := prepareDir(dir, opts.Logger); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dbName)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: boltTimeout,
		// NoSync must stay false: bbolt then fdatasyncs the data pages and
		// the meta page on every commit, and Commit returns only after both,
		// which is what lets Put promise that a returned write is durable.
		NoSync: false,
	})
	if err != nil {
		unlockDir(lock)
		return nil, openError(dir, path, err)
	}
	// A freshly created state.db is only durable once its directory entry is.
	if err := syncDir(dir); err != nil {
		bdb.Close()
		unlockDir(lock)
		return nil, fmt.Errorf("store: open %s: sync directory: %w", dir, err)
	}
	return &DB{path: path, bolt: bdb, lock: lock}, nil
}

// prepareDir creates dir with mode 0700 if it is missing. An existing
// directory is left as it is, with a warning if others may write to it.
func prepareDir(dir string, logger *slog.Logger) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store: create state directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store: state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 && logger != nil {
		logger.Warn("state directory is writable by group or others; it should be 0700",
			logKeyDir, dir, logKeyMode, fi.Mode().Perm().String())
	}
	return nil
}

func openError(dir, path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrInvalid),
		errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("store: open %s: not a valid state database (left in place; move it aside to start with empty state): %w", path, err)
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("store: open %s: %w: database %s is locked by another process", dir, ErrLocked, path)
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
