package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/edgefort/edgefort/internal/store"
)

const (
	bucketName = "iot-events"
	metaKey    = "meta"
	idPrefix   = "e/"
	seqPrefix  = "0/"
	seqWidth   = 20

	// recordVersion is the version of the stored record and meta formats.
	recordVersion = 1
)

// Record states.
const (
	stateReceived = "received"
	stateDone     = "done"
)

// record is what the store holds for one event id.
type record struct {
	V        int       `json:"v"`
	Seq      uint64    `json:"seq"`
	Type     string    `json:"type"`
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`
	Received time.Time `json:"received"`
	Done     time.Time `json:"done,omitzero"`
	Result   *Result   `json:"result,omitempty"`
	// Reported is set once the Reporter took the result (or there is
	// none).
	Reported bool `json:"reported,omitempty"`
	// LastError is the error of the last failed attempt, for the record.
	LastError string `json:"last_error,omitempty"`
}

// meta holds the sequence numbers: ids are indexed at [Oldest, Next).
type meta struct {
	V      int    `json:"v"`
	Next   uint64 `json:"next"`
	Oldest uint64 `json:"oldest"`
}

// records is the store side of the dispatcher.
type records struct {
	db        *store.DB
	retention int
	now       func() time.Time
}

func idKey(id string) string   { return idPrefix + id }
func seqKey(seq uint64) string { return fmt.Sprintf("%s%0*d", seqPrefix, seqWidth, seq) }
func checkVersion(v int) error {
	if v != recordVersion {
		return fmt.Errorf("record version %d, want %d", v, recordVersion)
	}
	return nil
}

// stageFunc stages the report of res in tx, the transaction that records
// res. An error rolls the transaction back and is returned (wrapped) by the
// records method that called it.
type stageFunc func(tx *store.Tx, res Result) error

// begin is the first step of handling ev. In one transaction it returns
// the id's record as it was (found false if there was none) and, unless it
// is done, records a new attempt (received, Attempts+1) — or, when fail
// returns a result for the new attempt's record, the done record with that
// result instead.
func (r *records) begin(ev Event, fail func(cur record) *Result) (prev record, found bool, cur record, err error) {
	return r.beginStaged(ev, fail, nil)
}

// beginStaged is begin that, when it records a done record and stage is not
// nil, stages the result's report in the same transaction and writes the
// record reported.
func (r *records) beginStaged(ev Event, fail func(cur record) *Result, stage stageFunc) (prev record, found bool, cur record, err error) {
	err = r.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(bucketName)
		found, err = b.Get(idKey(ev.ID), &prev)
		if err != nil {
			return err
		}
		if found {
			if err := checkVersion(prev.V); err != nil {
				return err
			}
			if prev.State == stateDone {
				cur = prev
				return nil
			}
			cur = prev
		} else {
			cur = record{V: recordVersion, Type: ev.Type, State: stateReceived, Received: r.now()}
		}
		cur.Attempts++
		if res := fail(cur); res != nil {
			cur.State, cur.Done, cur.Result = stateDone, r.now(), res
			if stage != nil {
				if err := stage(tx, *res); err != nil {
					return err
				}
				cur.Reported = true
			}
		}
		if found {
			return b.Put(idKey(ev.ID), cur)
		}
		return r.appendLocked(b, ev.ID, &cur)
	})
	if err != nil {
		return record{}, false, record{}, fmt.Errorf("record event %s: %w", ev.ID, err)
	}
	return prev, found, cur, nil
}

// finish records ev done with res.
func (r *records) finish(ev Event, res Result) (record, error) {
	return r.finishStaged(ev, res, nil)
}

// finishStaged is finish that, if stage is not nil, stages the report in
// the same transaction and writes the record reported.
func (r *records) finishStaged(ev Event, res Result, stage stageFunc) (record, error) {
	var cur record
	err := r.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(bucketName)
		found, err := b.Get(idKey(ev.ID), &cur)
		if err != nil {
			return err
		}
		if !found {
			// Forgotten while its handler ran (a Retention smaller than
			// the events in flight): remember it afresh.
			cur = record{V: recordVersion, Type: ev.Type, Received: r.now(), Attempts: 1}
		}
		cur.State, cur.Done, cur.Result, cur.LastError = stateDone, r.now(), &res, ""
		if stage != nil {
			if err := stage(tx, res); err != nil {
				return err
			}
			cur.Reported = true
		}
		if found {
			return b.Put(idKey(ev.ID), cur)
		}
		return r.appendLocked(b, ev.ID, &cur)
	})
	if err != nil {
		return record{}, fmt.Errorf("record event %s done: %w", ev.ID, err)
	}
	return cur, nil
}

// retryLater notes a failed attempt's error on a received record.
func (r *records) retryLater(ev Event, cause error) error {
	err := r.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(bucketName)
		var cur record
		found, err := b.Get(idKey(ev.ID), &cur)
		if err != nil || !found || cur.State != stateReceived {
			return err
		}
		cur.LastError = cause.Error()
		return b.Put(idKey(ev.ID), cur)
	})
	if err != nil {
		return fmt.Errorf("record event %s error: %w", ev.ID, err)
	}
	return nil
}

// markReported notes that the id's result was reported.
func (r *records) markReported(id string) error {
	err := r.db.Update(func(tx *store.Tx) error {
		b := tx.Bucket(bucketName)
		var cur record
		found, err := b.Get(idKey(id), &cur)
		if err != nil || !found || cur.State != stateDone || cur.Reported {
			return err
		}
		cur.Reported = true
		return b.Put(idKey(id), cur)
	})
	if err != nil {
		return fmt.Errorf("record event %s reported: %w", id, err)
	}
	return nil
}

// appendLocked stores rec for id under the next sequence number and forgets
// the oldest ids beyond the retention. It runs inside tx.
func (r *records) appendLocked(b *store.TxBucket, id string, rec *record) error {
	var m meta
	found, err := b.Get(metaKey, &m)
	if err != nil {
		return err
	}
	if !found {
		m = meta{V: recordVersion}
	} else if err := checkVersion(m.V); err != nil {
		return err
	}
	rec.Seq = m.Next
	m.Next++
	if err := b.Put(seqKey(rec.Seq), id); err != nil {
		return err
	}
	if err := b.Put(idKey(id), rec); err != nil {
		return err
	}
	for m.Next-m.Oldest > uint64(r.retention) {
		if err := r.forgetLocked(b, m.Oldest); err != nil {
			return err
		}
		m.Oldest++
	}
	return b.Put(metaKey, m)
}

// forgetLocked drops the id indexed at seq.
func (r *records) forgetLocked(b *store.TxBucket, seq uint64) error {
	var id string
	found, err := b.Get(seqKey(seq), &id)
	if err != nil || !found {
		return err
	}
	var rec record
	found, err = b.Get(idKey(id), &rec)
	if err != nil {
		return err
	}
	// The id may have been forgotten mid-handler and stored afresh under a
	// later number; only the record of this number goes.
	if found && rec.Seq == seq {
		if err := b.Delete(idKey(id)); err != nil {
			return err
		}
	}
	return b.Delete(seqKey(seq))
}

// get returns id's record.
func (r *records) get(id string) (record, bool, error) {
	rec, found, err := store.Get[record](r.db.Bucket(bucketName), idKey(id))
	if err != nil {
		return record{}, false, err
	}
	if found {
		err = checkVersion(rec.V)
	}
	return rec, found, err
}

// sanitize makes res storable: a body that is not JSON is replaced by a
// JSON string holding it.
func sanitize(res Result) Result {
	if len(res.Body) > 0 && !json.Valid(res.Body) {
		b, _ := json.Marshal(string(res.Body))
		res.Body = b
	}
	return res
}
