package events

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/cloudclient/outbox"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

// outboxTxReporter is the agent's adapter over a real outbox on the
// dispatcher's store, instrumented: it counts plain Reports and records what
// each ReportTx's done was told.
type outboxTxReporter struct {
	o *outbox.Outbox

	// stageErr, if set, is returned by ReportTx after it staged the item
	// and wrote to a bucket of its own, as a reporter failing half way
	// would.
	stageErr error
	// sabotage makes ReportTx leave the transaction unable to commit
	// (a bad iot-events meta) after staging successfully.
	sabotage bool

	mu      sync.Mutex
	plain   []string // ids reported through Report
	staged  []string // ids staged through ReportTx
	outcome []bool   // what each done was called with
}

const scratchBucket = "reporter-scratch"

func resultItem(ev Event, res Result) outbox.Item {
	body, _ := json.Marshal(map[string]any{"event_id": ev.ID, "result": res})
	return outbox.Item{Stream: "events", Type: "event.result", Body: body, Priority: outbox.High, Key: "event-" + ev.ID}
}

func (r *outboxTxReporter) Report(ctx context.Context, ev Event, res Result) error {
	r.mu.Lock()
	r.plain = append(r.plain, ev.ID)
	r.mu.Unlock()
	_, err := r.o.Enqueue(ctx, resultItem(ev, res))
	return err
}

func (r *outboxTxReporter) ReportTx(tx *store.Tx, ev Event, res Result) (func(bool), error) {
	_, done, err := r.o.EnqueueTx(tx, resultItem(ev, res))
	wrapped := func(committed bool) {
		r.mu.Lock()
		r.outcome = append(r.outcome, committed)
		r.mu.Unlock()
		done(committed)
	}
	if err != nil {
		return wrapped, err
	}
	r.mu.Lock()
	r.staged = append(r.staged, ev.ID)
	r.mu.Unlock()
	if r.stageErr != nil {
		if err := tx.Bucket(scratchBucket).Put(ev.ID, true); err != nil {
			return wrapped, err
		}
		return wrapped, r.stageErr
	}
	if r.sabotage {
		if err := tx.Bucket(bucketName).Put(metaKey, meta{V: 99}); err != nil {
			return wrapped, err
		}
	}
	return wrapped, nil
}

func (r *outboxTxReporter) calls() (plain, staged []string, outcome []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.plain...), append([]string(nil), r.staged...), append([]bool(nil), r.outcome...)
}

// newOutboxReporter returns an outboxTxReporter over an outbox on db.
func newOutboxReporter(t *testing.T, db *store.DB) *outboxTxReporter {
	t.Helper()
	o, err := outbox.New(outbox.Options{Store: db, Registerer: prom.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return &outboxTxReporter{o: o}
}

// outboxKeys returns the idempotency keys queued in db's outbox bucket.
func outboxKeys(t *testing.T, db *store.DB) []string {
	t.Helper()
	var keys []string
	err := db.Bucket("outbox").ForEach(func(key string, raw json.RawMessage) error {
		if key == "meta" {
			return nil
		}
		var it struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(raw, &it); err != nil {
			return err
		}
		keys = append(keys, it.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestTxReporterReportsInFinish: with a TxReporter the result is queued in
// the transaction that records it, so the record is reported at once and
// neither Report nor a separate markReported commit is needed — for a
// handled event (finish), and for a rejected or given-up one (begin).
// Redeliveries then queue nothing more.
func TestTxReporterReportsInFinish(t *testing.T) {
	tests := []struct {
		name       string
		deliveries int // of which all but the last fail the handler
		typ        string
		wantStatus string
	}{
		{name: "handled", deliveries: 1, typ: "test", wantStatus: StatusDone},
		{name: "unknown type", deliveries: 1, typ: "nope", wantStatus: StatusRejected},
		{name: "given up", deliveries: 3, typ: "flaky", wantStatus: StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := testkit.OpenStore(t, t.TempDir())
			rep := newOutboxReporter(t, db)
			d, _ := newTestDispatcher(t, db, rep, func(o *Options) { o.MaxAttempts = 2 })
			c := newCounter()
			d.Register("test", c.handle)
			d.Register("flaky", func(context.Context, Event) (Result, error) { return Result{}, errors.New("not now") })
			p := payload(t, "ev-1", tt.typ, "")
			for i := range tt.deliveries - 1 {
				if err := d.Handle(t.Context(), testTopic, p); err == nil {
					t.Fatalf("delivery %d: Handle = nil; want the handler's error", i)
				}
			}
			mustHandle(t, d, p)
			mustHandle(t, d, p) // a redelivery: a duplicate

			rec, found, err := d.records.get("ev-1")
			if err != nil || !found {
				t.Fatalf("record: found %v, %v", found, err)
			}
			if rec.State != stateDone || rec.Result == nil || rec.Result.Status != tt.wantStatus || !rec.Reported {
				t.Errorf("record = %+v; want done, %s, reported", rec, tt.wantStatus)
			}
			if diff := cmp.Diff([]string{"event-ev-1"}, outboxKeys(t, db)); diff != "" {
				t.Errorf("outbox (-want +got):\n%s", diff)
			}
			if got := rep.o.Len(); got != 1 {
				t.Errorf("outbox Len = %d; want 1", got)
			}
			plain, staged, outcome := rep.calls()
			if len(plain) != 0 {
				t.Errorf("plain Report called for %v; want only ReportTx", plain)
			}
			if diff := cmp.Diff([]string{"ev-1"}, staged); diff != "" {
				t.Errorf("ReportTx calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]bool{true}, outcome); diff != "" {
				t.Errorf("done outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTxReporterStageError: a ReportTx that fails after staging part of its
// writes does not fail the event: the transaction is rolled back (done told
// so, nothing of the reporter's kept), the result is recorded without it
// and reported through Report, exactly once.
func TestTxReporterStageError(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	rep := newOutboxReporter(t, db)
	rep.stageErr = errors.New("reporter broke")
	d, _ := newTestDispatcher(t, db, rep, nil)
	c := newCounter()
	d.Register("test", c.handle)
	p := payload(t, "ev-1", "test", "")
	mustHandle(t, d, p)
	mustHandle(t, d, p)

	if got := c.get("ev-1"); got != 1 {
		t.Errorf("handler ran %d times; want 1", got)
	}
	rec, _, err := d.records.get("ev-1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != stateDone || !rec.Reported {
		t.Errorf("record = %+v; want done and reported", rec)
	}
	if diff := cmp.Diff([]string{"event-ev-1"}, outboxKeys(t, db)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
	if got := rep.o.Len(); got != 1 {
		t.Errorf("outbox Len = %d; want 1", got)
	}
	if keys, err := db.Bucket(scratchBucket).Keys(); err != nil || len(keys) != 0 {
		t.Errorf("the failed ReportTx's writes were kept: %v, %v", keys, err)
	}
	plain, _, outcome := rep.calls()
	if diff := cmp.Diff([]string{"ev-1"}, plain); diff != "" {
		t.Errorf("plain Reports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{false}, outcome); diff != "" {
		t.Errorf("done outcomes (-want +got):\n%s", diff)
	}
	if got := value(d.metrics.reportFailures); got != 0 {
		t.Errorf("report failures = %v; want 0", got)
	}
}

// TestTxReporterRolledBackFinish: when the finish transaction fails after
// the report was staged, done is told so and no report is queued; the
// event stays unfinished, and its redelivery records and queues it once.
func TestTxReporterRolledBackFinish(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	rep := newOutboxReporter(t, db)
	d, _ := newTestDispatcher(t, db, rep, nil)
	var runs int
	d.Register("test", func(context.Context, Event) (Result, error) {
		runs++
		if runs == 1 {
			// Forget the record mid-handler, so that finish appends it
			// afresh and reads the meta the sabotaging ReportTx breaks.
			rep.sabotage = true
			if err := db.Bucket(bucketName).Delete(idKey("ev-1")); err != nil {
				return Result{}, err
			}
		} else {
			rep.sabotage = false
		}
		return Done(nil), nil
	})
	p := payload(t, "ev-1", "test", "")
	if err := d.Handle(t.Context(), testTopic, p); err == nil || !strings.Contains(err.Error(), "record version 99") {
		t.Fatalf("Handle with a failing finish = %v; want the bad meta's error", err)
	}
	if got := outboxKeys(t, db); len(got) != 0 {
		t.Errorf("outbox after a rolled-back finish holds %v; want nothing", got)
	}
	if got := rep.o.Len(); got != 0 {
		t.Errorf("outbox Len = %d; want 0", got)
	}
	if _, found, _ := d.records.get("ev-1"); found {
		t.Error("event recorded although its finish rolled back")
	}
	if _, _, outcome := rep.calls(); !cmp.Equal([]bool{false}, outcome) {
		t.Errorf("done outcomes = %v; want [false]", outcome)
	}

	mustHandle(t, d, p)
	rec, _, err := d.records.get("ev-1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != stateDone || !rec.Reported {
		t.Errorf("record = %+v; want done and reported", rec)
	}
	if diff := cmp.Diff([]string{"event-ev-1"}, outboxKeys(t, db)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
	if got := rep.o.Len(); got != 1 {
		t.Errorf("outbox Len = %d; want 1", got)
	}
	plain, _, outcome := rep.calls()
	if len(plain) != 0 || !cmp.Equal([]bool{false, true}, outcome) {
		t.Errorf("plain Reports %v, done outcomes %v; want none, [false true]", plain, outcome)
	}
}
