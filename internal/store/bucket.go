package store

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var errNoBucketName = errors.New("bucket name is empty")

// Bucket is a component's bucket. Each method runs in its own transaction;
// use DB.Update to change several keys or buckets atomically. The bucket is
// created on its first write; reading a bucket never written finds nothing.
type Bucket struct {
	db   *DB
	name string
}

// Bucket returns a handle on the named bucket. The name must not be empty;
// with an empty name every method returns an error.
func (db *DB) Bucket(name string) *Bucket {
	return &Bucket{db: db, name: name}
}

// Get decodes the JSON value at key into v. found is false, and v is left
// alone, if the key is absent.
func (b *Bucket) Get(key string, v any) (found bool, err error) {
	err = b.db.View(func(tx *Tx) error {
		found, err = tx.Bucket(b.name).Get(key, v)
		return err
	})
	return found, err
}

// Put stores v, encoded as JSON, at key. It returns once the write is
// fsynced (see the package comment).
func (b *Bucket) Put(key string, v any) error {
	return b.db.Update(func(tx *Tx) error { return tx.Bucket(b.name).Put(key, v) })
}

// Delete removes key. Deleting an absent key is not an error.
func (b *Bucket) Delete(key string) error {
	return b.db.Update(func(tx *Tx) error { return tx.Bucket(b.name).Delete(key) })
}

// Keys returns the bucket's keys in sorted order.
func (b *Bucket) Keys() (keys []string, err error) {
	err = b.db.View(func(tx *Tx) error {
		keys, err = tx.Bucket(b.name).Keys()
		return err
	})
	return keys, err
}

// ForEach calls fn for each key in sorted order with its raw JSON value. The
// entries are read in one snapshot first and fn runs outside any transaction,
// so fn may itself write to the store. An error from fn stops the walk and is
// returned as is.
func (b *Bucket) ForEach(fn func(key string, raw json.RawMessage) error) error {
	type entry struct {
		key string
		raw json.RawMessage
	}
	var entries []entry
	err := b.db.View(func(tx *Tx) error {
		return tx.Bucket(b.name).ForEach(func(key string, raw json.RawMessage) error {
			entries = append(entries, entry{key, raw})
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := fn(e.key, e.raw); err != nil {
			return err
		}
	}
	return nil
}

// Get is Bucket.Get returning a value of type T.
func Get[T any](b *Bucket, key string) (v T, found bool, err error) {
	found, err = b.Get(key, &v)
	return v, found, err
}

// TxBucket is a bucket within a transaction. It has Bucket's methods; writes
// fail in a View.
type TxBucket struct {
	tx   *bolt.Tx
	name string
}

// bucket returns the bbolt bucket, or nil if it does not exist yet.
func (b *TxBucket) bucket() (*bolt.Bucket, error) {
	if err := checkName(b.name); err != nil {
		return nil, err
	}
	return b.tx.Bucket([]byte(b.name)), nil
}

func checkName(name string) error {
	switch name {
	case "":
		return errNoBucketName
	case metaBucket:
		return errReservedBucket
	}
	return nil
}

// Get decodes the JSON value at key into v; see Bucket.Get.
func (b *TxBucket) Get(key string, v any) (bool, error) {
	bb, err := b.bucket()
	if err != nil {
		return false, fmt.Errorf("store: get %s/%s: %w", b.name, key, err)
	}
	if bb == nil {
		return false, nil
	}
	raw := bb.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("store: get %s/%s: %w", b.name, key, err)
	}
	return true, nil
}

// Put stores v, encoded as JSON, at key, creating the bucket if needed.
func (b *TxBucket) Put(key string, v any) error {
	if err := b.put(key, v); err != nil {
		return fmt.Errorf("store: put %s/%s: %w", b.name, key, err)
	}
	return nil
}

func (b *TxBucket) put(key string, v any) error {
	if err := checkName(b.name); err != nil {
		return err
	}
	if !b.tx.Writable() {
		return berrors.ErrTxNotWritable
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	bb := b.tx.Bucket([]byte(b.name))
	if bb == nil {
		// A new bucket is recorded in the same transaction; see schema.go.
		if bb, err = b.tx.CreateBucket([]byte(b.name)); err != nil {
			return err
		}
		if err := registerBucket(b.tx, b.name); err != nil {
			return err
		}
	}
	return bb.Put([]byte(key), raw)
}

// Delete removes key; an absent key or bucket is not an error.
func (b *TxBucket) Delete(key string) error {
	bb, err := b.bucket()
	if err == nil && !b.tx.Writable() {
		err = berrors.ErrTxNotWritable
	}
	if err == nil && bb != nil {
		err = bb.Delete([]byte(key))
	}
	if err != nil {
		return fmt.Errorf("store: delete %s/%s: %w", b.name, key, err)
	}
	return nil
}

// Keys returns the bucket's keys in sorted order.
func (b *TxBucket) Keys() ([]string, error) {
	var keys []string
	err := b.ForEach(func(key string, _ json.RawMessage) error {
		keys = append(keys, key)
		return nil
	})
	return keys, err
}

// ForEach calls fn for each key in sorted order with a copy of its raw JSON
// value. fn must not write to this bucket. An error from fn stops the walk
// and is returned as is.
func (b *TxBucket) ForEach(fn func(key string, raw json.RawMessage) error) error {
	bb, err := b.bucket()
	if err != nil {
		return fmt.Errorf("store: list %s: %w", b.name, err)
	}
	if bb == nil {
		return nil
	}
	// bbolt iterates in byte order, which is Go's string order, so the keys
	// come out sorted. Values are copied: bbolt's slices point into the
	// memory map and are invalid once the transaction ends.
	c := bb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			continue // a nested bucket; the store creates none
		}
		if err := fn(string(k), json.RawMessage(append([]byte(nil), v...))); err != nil {
			return err
		}
	}
	return nil
}
