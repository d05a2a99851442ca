package store

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The store's own bucket records the layout version and every bucket the
// components have created. bbolt keeps no checksums of keys, so a damaged
// bucket name would otherwise read as a bucket never written (a node not
// enrolled, no update in progress); with the record, Open finds the
// recorded bucket missing and an unknown one in its place, and refuses the
// file.
const (
	metaBucket = "_store" // reserved: Bucket refuses this name
	// schemaKey holds the layout version. Its name is unlikely in any
	// component's bucket, so that finding it elsewhere tells a damaged
	// meta bucket name from a database made before the record existed.
	schemaKey       = "edgefort-store-schema"
	schemaVersion   = 1
	bucketKeyPrefix = "bucket/"
)

var errReservedBucket = fmt.Errorf("bucket name %q is reserved for the store", metaBucket)

// initSchema writes the record into a new database.
func initSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket([]byte(metaBucket))
	if err != nil {
		return err
	}
	return meta.Put([]byte(schemaKey), []byte(strconv.Itoa(schemaVersion)))
}

// adoptSchema records the buckets of a database made before the record
// existed.
func adoptSchema(tx *bolt.Tx) error {
	if err := initSchema(tx); err != nil {
		return err
	}
	return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if string(name) == metaBucket {
			return nil
		}
		return registerBucket(tx, string(name))
	})
}

// registerBucket records a bucket just created in tx.
func registerBucket(tx *bolt.Tx, name string) error {
	meta := tx.Bucket([]byte(metaBucket))
	if meta == nil {
		return errors.New("the store's own bucket is missing")
	}
	return meta.Put([]byte(bucketKeyPrefix+name), []byte("1"))
}

// checkSchema compares the buckets in tx with the record. legacy is true
// for a database made before the record existed, which has none.
func checkSchema(tx *bolt.Tx) (legacy bool, err error) {
	var names []string
	marked := ""
	err = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if string(name) != metaBucket {
			names = append(names, string(name))
			if b.Get([]byte(schemaKey)) != nil {
				marked = string(name)
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	meta := tx.Bucket([]byte(metaBucket))
	if meta == nil {
		if marked != "" {
			return false, fmt.Errorf("the store's own bucket %q is missing and bucket %q holds its version: a bucket name is damaged", metaBucket, marked)
		}
		return true, nil
	}
	v, err := strconv.Atoi(string(meta.Get([]byte(schemaKey))))
	switch {
	case err != nil:
		return false, fmt.Errorf("its layout version %q is not a number", meta.Get([]byte(schemaKey)))
	case v > schemaVersion:
		return false, fmt.Errorf("its layout version %d is newer than this edgefort reads (%d): it was made by a later release", v, schemaVersion)
	}
	var recorded []string
	c := meta.Cursor()
	prefix := []byte(bucketKeyPrefix)
	for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), bucketKeyPrefix); k, _ = c.Next() {
		recorded = append(recorded, strings.TrimPrefix(string(k), bucketKeyPrefix))
	}
	// Both lists come sorted (bbolt iterates in key order).
	var probs []string
	for _, name := range recorded {
		if _, found := slices.BinarySearch(names, name); !found {
			probs = append(probs, fmt.Sprintf("bucket %q is missing", name))
		}
	}
	for _, name := range names {
		if _, found := slices.BinarySearch(recorded, name); !found {
			probs = append(probs, fmt.Sprintf("bucket %q was never created by edgefort", name))
		}
	}
	if len(probs) > 0 {
		return false, fmt.Errorf("its buckets differ from the ones recorded (a bucket name is damaged): %s", strings.Join(probs, ", "))
	}
	return false, nil
}
