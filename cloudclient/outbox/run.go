package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/internal/store"
)

var (
	errNoSender   = errors.New("outbox: run: no sender configured")
	errRunning    = errors.New("outbox: run: already running")
	errNoProgress = errors.New("answer settled none of the batch")
	errStopWalk   = errors.New("stop")
)

// queued is an item read back from the store for delivery.
type queued struct {
	seq uint64
	rec record
}

// Run delivers the queue until ctx ends, then returns nil. It sends the
// oldest items, up to Options.Batch at a time, and in one transaction
// removes every item whose key the answer acknowledged or rejected; the
// others are sent again. After a failed send, or an answer that settles
// nothing, it waits out the backoff and sends the same items again. When
// the queue is empty it waits for Enqueue, then Options.Linger more. It
// returns an error only if the store fails; one Run at a time.
func (o *Outbox) Run(ctx context.Context) error {
	if o.sender == nil {
		return errNoSender
	}
	if !o.running.CompareAndSwap(false, true) {
		return errRunning
	}
	defer o.running.Store(false)

	bo := backoff.Backoff{Policy: o.backoff.policy(), Rand: o.rand}
	limit := o.batch // shrinks while the control plane refuses a batch
	for ctx.Err() == nil {
		// Drain the wake-up before reading, so an Enqueue that commits after
		// the read leaves a token for the wait below.
		select {
		case <-o.wake:
		default:
		}
		batch, err := o.head(limit)
		if err != nil {
			return fmt.Errorf("outbox: read queue: %w", err)
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
			case <-o.wake:
				if o.linger > 0 {
					_ = backoff.Sleep(ctx, o.linger) // let the rest of a burst arrive
				}
			}
			continue
		}
		resp, sendErr := o.sender.SendReports(ctx, reports(batch))
		if sendErr != nil && ctx.Err() != nil {
			return nil // the batch stays queued; it goes again next time
		}
		if sendErr != nil && o.refused != nil && o.refused(sendErr) {
			if len(batch) > 1 {
				// Find the item at fault: send halves until it is alone.
				limit = max(1, len(batch)/2)
				o.log.Warn("outbox: control plane refused a batch; sending smaller ones", logKeyError, sendErr, "batch", limit)
				continue
			}
			if err := o.dropRefused(batch[0], sendErr); err != nil {
				return fmt.Errorf("outbox: drop a refused item: %w", err)
			}
			continue
		}
		if sendErr == nil {
			// Settled even if ctx ended meanwhile: the answer is in hand, and
			// a shutdown should not cause resends.
			settled, err := o.settle(batch, resp)
			if err != nil {
				return fmt.Errorf("outbox: remove delivered items: %w", err)
			}
			if settled > 0 {
				limit = o.batch
				if bo.Failures() > 0 {
					o.log.Info("outbox: delivering again", logKeyFailures, bo.Failures(), logKeyQueued, o.Len())
				}
				bo.Reset()
				continue
			}
			sendErr = errNoProgress
		}
		o.metrics.sendFailures.Inc()
		delay := bo.Next()
		// The first failure in a row, then every tenth: an outage of hours
		// stays readable.
		lvl := o.log.Debug
		if bo.Failures() == 1 || bo.Failures()%10 == 0 {
			lvl = o.log.Warn
		}
		lvl("outbox: send failed; backing off", logKeyError, sendErr,
			logKeyFailures, bo.Failures(), logKeyDelay, delay, logKeyQueued, o.Len())
		_ = backoff.Sleep(ctx, delay) // an ended ctx ends the loop
	}
	return nil
}

// dropRefused removes an item the control plane refuses on its own, so
// that the rest of the queue can go.
func (o *Outbox) dropRefused(q queued, why error) error {
	return o.remove([]uint64{q.seq}, func() {
		o.metrics.dropped.WithLabelValues(dropRefused).Inc()
		o.log.Error("outbox: control plane refuses an item; dropped",
			logKeyStream, q.rec.Stream, logKeyType, q.rec.Type, logKeyKey, q.rec.Key, logKeySeq, q.seq, logKeyError, why)
	})
}

// head reads the oldest items, up to limit, in sequence order.
// Items that no longer decode are dropped on the way (logged and counted).
// Because the batch is a prefix of the queue, every earlier item of a stream
// in it is either before it in the batch or already delivered.
func (o *Outbox) head(limit int) ([]queued, error) {
	var batch []queued
	var bad []uint64
	err := o.db.View(func(tx *store.Tx) error {
		return tx.Bucket(bucketName).ForEach(func(key string, raw json.RawMessage) error {
			if len(batch) == limit {
				return errStopWalk
			}
			seq, ok := parseSeq(key)
			if !ok {
				return nil // metaKey, which sorts last, or a stray key
			}
			var r record
			if err := json.Unmarshal(raw, &r); err != nil {
				o.log.Error("outbox: dropping an item that does not decode", logKeySeq, seq, logKeyError, err)
				bad = append(bad, seq)
				return nil
			}
			batch = append(batch, queued{seq: seq, rec: r})
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return nil, err
	}
	if len(bad) > 0 {
		err := o.remove(bad, func() {
			o.metrics.dropped.WithLabelValues(dropUndecodable).Add(float64(len(bad)))
		})
		if err != nil {
			return nil, err
		}
	}
	return batch, nil
}

func reports(batch []queued) []api.Report {
	rs := make([]api.Report, len(batch))
	for i, q := range batch {
		rs[i] = api.Report{
			IdempotencyKey: q.rec.Key,
			Stream:         q.rec.Stream,
			Type:           q.rec.Type,
			Time:           q.rec.Time,
			Body:           q.rec.Body,
		}
	}
	return rs
}

// settle removes, in one transaction, the items of batch whose keys resp
// acknowledged or rejected, and returns how many that was.
func (o *Outbox) settle(batch []queued, resp api.ReportsResponse) (int, error) {
	byKey := make(map[string][]queued, len(batch))
	for _, q := range batch {
		byKey[q.rec.Key] = append(byKey[q.rec.Key], q)
	}
	var done []uint64
	acked := 0
	for _, k := range resp.Acknowledged {
		for _, q := range byKey[k] {
			done = append(done, q.seq)
			acked++
		}
		delete(byKey, k) // a key listed twice counts once
	}
	type rejection struct {
		q      queued
		reason string
	}
	var rejected []rejection
	for _, r := range resp.Rejected {
		for _, q := range byKey[r.IdempotencyKey] {
			done = append(done, q.seq)
			rejected = append(rejected, rejection{q, r.Reason})
		}
		delete(byKey, r.IdempotencyKey)
	}
	if len(done) == 0 {
		return 0, nil
	}
	// Counted and logged under the lock, with the removal: whoever sees
	// the queue shrink sees the counts too.
	err := o.remove(done, func() {
		o.metrics.sent.Add(float64(acked))
		o.metrics.rejected.Add(float64(len(rejected)))
		for _, r := range rejected {
			o.log.Warn("outbox: control plane rejected an item; dropped",
				logKeyStream, r.q.rec.Stream, logKeyType, r.q.rec.Type, logKeyKey, r.q.rec.Key,
				logKeySeq, r.q.seq, logKeyReason, r.reason)
		}
	})
	if err != nil {
		return 0, err
	}
	return len(done), nil
}

// remove deletes the items at seqs in one transaction, then calls
// committed, if not nil, still holding the lock. An item an Enqueue dropped
// meanwhile is already gone, which is fine.
//
// o.mu is taken inside the transaction, after the store's writer lock (see
// the lock order on Outbox.mu), and held until the index matches the
// commit.
func (o *Outbox) remove(seqs []uint64, committed func()) error {
	locked := false
	defer func() {
		if locked {
			o.mu.Unlock()
		}
	}()
	err := o.db.Update(func(tx *store.Tx) error {
		if !locked {
			o.mu.Lock()
			locked = true
		}
		b := tx.Bucket(bucketName)
		for _, seq := range seqs {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		o.forgetLocked(seq)
	}
	o.metrics.queued.Set(float64(o.lenLocked()))
	if committed != nil {
		committed()
	}
	return nil
}
