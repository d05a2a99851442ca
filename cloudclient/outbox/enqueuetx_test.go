package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

// otherBucket stands for the caller's own state, written in the same
// transaction as the staged item.
const otherBucket = "caller"

var errAbort = errors.New("caller aborts its transaction")

// enqueueTx stages it with EnqueueTx in a transaction that also writes key
// to otherBucket, and fails that transaction with errAbort if abort is set.
// inTx, if not nil, runs inside the transaction after EnqueueTx. It returns
// EnqueueTx's error, or the transaction's.
func enqueueTx(t *testing.T, o *Outbox, it Item, abort bool, inTx func()) (string, error) {
	t.Helper()
	var (
		key      string
		done     func(bool)
		stageErr error
	)
	err := o.db.Update(func(tx *store.Tx) error {
		key, done, stageErr = o.EnqueueTx(tx, it)
		if stageErr != nil && !errors.Is(stageErr, ErrFull) {
			return stageErr
		}
		if err := tx.Bucket(otherBucket).Put(it.Key, true); err != nil {
			return err
		}
		if inTx != nil {
			inTx()
		}
		if abort {
			return errAbort
		}
		return nil
	})
	if done == nil {
		// Error, not Fatal: this also runs on the concurrent test's
		// goroutines.
		t.Errorf("EnqueueTx %s returned a nil done", it.Key)
		return key, errors.New("nil done")
	}
	done(err == nil)
	if stageErr != nil {
		return key, stageErr
	}
	return key, err
}

// callerKeys returns the keys the caller's transactions wrote to otherBucket.
func callerKeys(t *testing.T, db *store.DB) []string {
	t.Helper()
	keys, err := db.Bucket(otherBucket).Keys()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// storedKeys returns the raw keys of the outbox bucket: sequence numbers
// and meta.
func storedKeys(t *testing.T, db *store.DB) []string {
	t.Helper()
	keys, err := db.Bucket(bucketName).Keys()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestEnqueueTxDelivered mixes Enqueue and committed EnqueueTx: the staged
// items are queued with the caller's writes, and Run delivers all of them
// in enqueue order.
func TestEnqueueTxDelivered(t *testing.T) {
	s := &scriptSender{answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) { return ackAll(rs), nil }}
	o := newTestOutbox(t, Options{Sender: s, Batch: 2})
	keys := []string{"a1", "a2", "a3", "a4", "a5"}
	var staged []string
	for i, k := range keys {
		it := Item{Stream: "a", Type: "t", Key: k}
		if i%2 == 1 {
			got, err := enqueueTx(t, o, it, false, nil)
			if err != nil || got != k {
				t.Fatalf("EnqueueTx %s = %q, %v; want the key, nil", k, got, err)
			}
			staged = append(staged, k)
			continue
		}
		if _, err := o.Enqueue(t.Context(), it); err != nil {
			t.Fatal(err)
		}
	}
	if got := o.Len(); got != len(keys) {
		t.Fatalf("Len = %d; want %d", got, len(keys))
	}
	if diff := cmp.Diff(staged, callerKeys(t, o.db)); diff != "" {
		t.Errorf("caller's writes (-want +got):\n%s", diff)
	}
	startRun(t, o)
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })
	var got []string
	for _, c := range s.callKeys() {
		got = append(got, c...)
	}
	if diff := cmp.Diff(keys, got); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

// TestEnqueueTxRolledBack fails the caller's transaction after EnqueueTx:
// nothing is queued, dropped or logged, and the queue goes on as if the
// attempt never happened, also after a reopen.
func TestEnqueueTxRolledBack(t *testing.T) {
	tests := []struct {
		name string
		max  int
		pri  Priority
	}{
		{name: "room left", max: 10, pri: Low},
		{name: "with a drop staged", max: 2, pri: High},
		{name: "low item dropping itself", max: 2, pri: Low},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			db := testkit.OpenStore(t, t.TempDir())
			o := newTestOutbox(t, Options{Store: db, MaxItems: tt.max, Logger: logs.logger()})
			// With max 2 the queue is full: a high item stages q1's drop;
			// a low one, behind two high ones, stages its own.
			first := []Item{{Stream: "s", Type: "t", Key: "q1"}, {Stream: "s", Type: "t", Key: "q2", Priority: High}}
			if tt.name == "low item dropping itself" {
				first[0].Priority = High
			}
			for _, it := range first {
				if _, err := o.Enqueue(t.Context(), it); err != nil {
					t.Fatal(err)
				}
			}
			_, err := enqueueTx(t, o, Item{Stream: "s", Type: "t", Priority: tt.pri, Key: "gone"}, true, nil)
			if !errors.Is(err, errAbort) && !errors.Is(err, ErrFull) {
				t.Fatalf("rolled-back EnqueueTx: %v; want errAbort or ErrFull", err)
			}
			want := []string{"q1", "q2"}
			if diff := cmp.Diff(want, queuedKeys(t, db)); diff != "" {
				t.Errorf("queue (-want +got):\n%s", diff)
			}
			if got := o.Len(); got != len(want) {
				t.Errorf("Len = %d; want %d", got, len(want))
			}
			if got := callerKeys(t, db); len(got) != 0 {
				t.Errorf("caller's rolled-back writes are stored: %v", got)
			}
			if got := logs.records(t, slog.LevelWarn, "dropped"); len(got) != 0 {
				t.Errorf("drops logged for a rolled-back transaction: %v", got)
			}
			for _, reason := range []string{dropFullLow, dropFullHigh} {
				if got := metricValue(t, o, "edgefort_cloud_outbox_dropped_total", reason); got != 0 {
					t.Errorf("dropped_total{reason=%q} = %v; want 0", reason, got)
				}
			}

			// The queue still works, under the sequence number the rolled
			// back item did not take. (Room made for it, not a drop.)
			o.maxItems = 10
			if _, err := o.Enqueue(t.Context(), Item{Stream: "s", Type: "t", Key: "q3"}); err != nil {
				t.Fatal(err)
			}
			wantStored := []string{seqKey(0), seqKey(1), seqKey(2), metaKey}
			if diff := cmp.Diff(wantStored, storedKeys(t, db)); diff != "" {
				t.Errorf("stored keys (-want +got):\n%s", diff)
			}
			reopened := newTestOutbox(t, Options{Store: db})
			if got := reopened.Len(); got != 3 {
				t.Errorf("Len after reopen = %d; want 3", got)
			}
			if _, err := enqueueTx(t, reopened, Item{Stream: "s", Type: "t", Key: "q4"}, false, nil); err != nil {
				t.Fatal(err)
			}
			wantStored = []string{seqKey(0), seqKey(1), seqKey(2), seqKey(3), metaKey}
			if diff := cmp.Diff(wantStored, storedKeys(t, db)); diff != "" {
				t.Errorf("stored keys after reopen (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"q1", "q2", "q3", "q4"}, queuedKeys(t, db)); diff != "" {
				t.Errorf("queue after reopen (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEnqueueTxBound checks the bound with EnqueueTx: the oldest low items
// go first, then the oldest high ones, a low item arriving at a queue full
// of high ones is dropped with ErrFull, and every drop is logged only once
// the transaction has committed.
func TestEnqueueTxBound(t *testing.T) {
	tests := []struct {
		name     string
		max      int
		enqueue  []string // key; a leading "h" means high priority
		wantErr  []string // keys whose EnqueueTx returns ErrFull
		want     []string
		wantDrop []string // dropped keys, in order
	}{
		{
			name:     "oldest low first",
			max:      3,
			enqueue:  []string{"h1", "l1", "l2", "h2", "h3"},
			want:     []string{"h1", "h2", "h3"},
			wantDrop: []string{"l1", "l2"},
		},
		{
			name:     "then oldest high",
			max:      2,
			enqueue:  []string{"h1", "l1", "h2", "h3"},
			want:     []string{"h2", "h3"},
			wantDrop: []string{"l1", "h1"},
		},
		{
			name:     "low into a queue of high items drops itself",
			max:      2,
			enqueue:  []string{"h1", "h2", "l1"},
			wantErr:  []string{"l1"},
			want:     []string{"h1", "h2"},
			wantDrop: []string{"l1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			db := testkit.OpenStore(t, t.TempDir())
			o := newTestOutbox(t, Options{Store: db, MaxItems: tt.max, Logger: logs.logger()})
			var gotErr []string
			for _, k := range tt.enqueue {
				p := Low
				if k[0] == 'h' {
					p = High
				}
				before := len(logs.records(t, slog.LevelWarn, "dropped"))
				_, err := enqueueTx(t, o, Item{Stream: "s", Type: "t", Priority: p, Key: k}, false, func() {
					if got := len(logs.records(t, slog.LevelWarn, "dropped")); got != before {
						t.Errorf("EnqueueTx %s: a drop was logged before the commit", k)
					}
				})
				if errors.Is(err, ErrFull) {
					gotErr = append(gotErr, k)
				} else if err != nil {
					t.Fatalf("EnqueueTx %s: %v", k, err)
				}
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("ErrFull for (-want +got):\n%s", diff)
			}
			checkQueued(t, o, db, tt.want)
			var gotDrop []string
			for _, r := range logs.records(t, slog.LevelWarn, "dropped") {
				gotDrop = append(gotDrop, r[logKeyKey].(string))
			}
			if diff := cmp.Diff(tt.wantDrop, gotDrop); diff != "" {
				t.Errorf("drop logs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEnqueueTxConcurrent mixes Enqueue, committed and rolled-back
// EnqueueTx and Len from many goroutines while Run delivers and removes:
// nothing deadlocks (the lock order holds), every committed item is
// delivered exactly once and no rolled-back one ever is.
func TestEnqueueTxConcurrent(t *testing.T) {
	const (
		writers   = 8
		perWriter = 40
	)
	s := &scriptSender{answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) { return ackAll(rs), nil }}
	o := newTestOutbox(t, Options{Sender: s, Batch: 5})
	startRun(t, o)

	var (
		mu        sync.Mutex
		committed = map[string]bool{}
		aborted   = map[string]bool{}
		stop      atomic.Bool
	)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var wg sync.WaitGroup
		wg.Go(func() { // a reader of the index throughout
			for !stop.Load() {
				o.Len()
				runtime.Gosched()
			}
		})
		var writersWG sync.WaitGroup
		for w := range writers {
			writersWG.Go(func() {
				for i := range perWriter {
					k := fmt.Sprintf("w%d-%03d", w, i)
					it := Item{Stream: fmt.Sprintf("w%d", w), Type: "t", Key: k}
					var err error
					abort := false
					switch i % 3 {
					case 0:
						_, err = o.Enqueue(context.Background(), it)
					case 1:
						_, err = enqueueTx(t, o, it, false, nil)
					case 2:
						abort = i%2 == 0
						_, err = enqueueTx(t, o, it, abort, nil)
					}
					mu.Lock()
					switch {
					case abort && errors.Is(err, errAbort):
						aborted[k] = true
					case err == nil:
						committed[k] = true
					default:
						t.Errorf("enqueue %s: %v", k, err)
					}
					mu.Unlock()
				}
			})
		}
		writersWG.Wait()
		stop.Store(true)
		wg.Wait()
	}()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("enqueuers still blocked after 60s: deadlock?\n%s", buf[:n])
	}
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })

	delivered := map[string]int{}
	for _, c := range s.callKeys() {
		for _, k := range c {
			delivered[k]++
		}
	}
	for k := range committed {
		if delivered[k] != 1 {
			t.Errorf("committed item %s delivered %d times; want once", k, delivered[k])
		}
	}
	for k := range delivered {
		if aborted[k] {
			t.Errorf("rolled-back item %s delivered", k)
		}
	}
	if len(committed)+len(aborted) != writers*perWriter || len(aborted) == 0 {
		t.Errorf("%d committed, %d aborted; want %d in all, some aborted", len(committed), len(aborted), writers*perWriter)
	}
	if len(delivered) != len(committed) {
		t.Errorf("%d distinct items delivered; want the %d committed", len(delivered), len(committed))
	}
}

// TestEnqueueTxInvalid: an invalid item fails EnqueueTx before it takes
// the lock; done is still safe to call and the outbox stays usable.
func TestEnqueueTxInvalid(t *testing.T) {
	o := newTestOutbox(t, Options{})
	_, err := enqueueTx(t, o, Item{Type: "t", Key: "k"}, false, nil)
	if err == nil || err.Error() != "outbox: enqueue: stream: required" {
		t.Fatalf("EnqueueTx without a stream: %v", err)
	}
	if _, err := o.Enqueue(t.Context(), Item{Stream: "s", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	if got := o.Len(); got != 1 {
		t.Errorf("Len = %d; want 1", got)
	}
}
