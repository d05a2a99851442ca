// Package outbox is the agent's durable queue of reports and job-status
// updates bound for the control plane.
//
// [Outbox.Enqueue] writes an item to the state store (bucket "outbox") and
// returns only once it is committed and fsynced; nothing is sent before
// that. [Outbox.EnqueueTx] instead stages the item in a transaction of the
// caller's, so that it is queued if and only if the caller's own writes
// commit, in one commit (the transactional-outbox pattern). [Outbox.Run] delivers the queue in batches through a [Sender]
// (cloudclient.Client in the agent), oldest first, so the items of one
// stream reach the control plane in the order they were enqueued. Delivery
// is at least once: an item leaves the store only when the control plane has
// acknowledged or rejected its idempotency key, so a crash between a send
// and the answer makes the item go again with the same key, which the server
// records once. While sends fail, Run backs off exponentially with full
// jitter.
//
// The queue is bounded. When it is full, Enqueue drops the oldest
// low-priority item to make room, or, when every queued item is high
// priority, the oldest high-priority one. Every drop is logged and counted.
//
// Storage: keys are the items' 20-digit, zero-padded sequence numbers, so
// that byte order is enqueue order; values are the items as JSON. The meta
// key holds the next sequence number and is written in the same transaction
// as each item.
package outbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
)

// ErrFull reports that a low-priority item was dropped as soon as it was
// enqueued, because the queue was full and held only high-priority items.
// The drop was logged and counted; callers may ignore it.
var ErrFull = errors.New("outbox is full of high-priority items; low-priority item dropped")

const (
	bucketName = "outbox"
	// metaKey holds the queue's meta record. Letters sort after digits, so
	// it comes after every sequence key.
	metaKey  = "meta"
	seqWidth = 20

	// recordVersion is the version of the stored record and meta formats.
	recordVersion = 1

	defaultMaxItems       = 10000
	defaultBatch          = 100
	defaultLinger         = 100 * time.Millisecond
	defaultBackoffInitial = time.Second
	defaultBackoffMax     = 2 * time.Minute

	logKeyStream   = "stream"
	logKeyType     = "type"
	logKeyKey      = "idempotency_key"
	logKeySeq      = "seq"
	logKeyPriority = "priority"
	logKeyReason   = "reason"
	logKeyError    = "error"
	logKeyDelay    = "retry_in"
	logKeyFailures = "failures"
	logKeyQueued   = "queued"
)

// Priority decides which items a full queue drops first. The zero value is
// Low.
type Priority int

const (
	// Low items are dropped first when the queue is full.
	Low Priority = iota
	// High items are dropped only when every queued item is high priority.
	High
)

func (p Priority) String() string {
	switch p {
	case Low:
		return "low"
	case High:
		return "high"
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText encodes p as "low" or "high".
func (p Priority) MarshalText() ([]byte, error) {
	if p != Low && p != High {
		return nil, fmt.Errorf("unknown priority %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText decodes "low" or "high".
func (p *Priority) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*p = Low
	case "high":
		*p = High
	default:
		return fmt.Errorf("unknown priority %q", b)
	}
	return nil
}

// Item is one report or job-status update to deliver.
type Item struct {
	// Stream is the ordering domain: the items of one stream are delivered
	// in the order they were enqueued. Required.
	Stream string
	// Type says what the report is, for the control plane. Required.
	Type string
	// Priority decides what a full queue drops first. Zero means Low.
	Priority Priority
	// Body is the report itself, JSON. Optional.
	Body json.RawMessage
	// Key is the idempotency key the control plane records the item under.
	// Empty means a random 128-bit key, base64url without padding.
	Key string
	// Time is when the reported thing happened. Zero means now.
	Time time.Time
}

// Sender sends one batch of reports; cloudclient.Client implements it. The
// answer follows api.ReportsResponse: acknowledged and rejected keys are
// done with, any other key is sent again.
type Sender interface {
	SendReports(ctx context.Context, reports []api.Report) (api.ReportsResponse, error)
}

// Backoff sets the delays between failed sends. The nominal delay is Initial
// after a first failure and doubles with each further one up to Max; the
// delay used is drawn uniformly from [0, nominal) ("full jitter"). A send
// that makes progress starts the sequence over.
type Backoff struct {
	// Initial is the nominal delay after a first failure. Zero means 1s.
	Initial time.Duration
	// Max caps the nominal delay; at least Initial. Zero means 2m.
	Max time.Duration
}

// Options configures New.
type Options struct {
	// Store is the state database; the outbox owns its bucket "outbox".
	// Required.
	Store *store.DB
	// Sender delivers batches. Required by Run; Enqueue works without it.
	Sender Sender
	// MaxItems bounds the queue. Zero means 10000.
	MaxItems int
	// Batch is the most reports sent in one call. Zero means 100.
	Batch int
	// Linger is how long Run waits, once items arrive in an empty queue,
	// before it sends them, so that a burst goes out in one call and is
	// removed in one store commit instead of one of each per item (the
	// commits share the disk with the callers' own). Zero means 100ms;
	// negative means no wait.
	Linger time.Duration
	// Backoff sets the delays between failed sends.
	Backoff Backoff
	// Logger receives drops, rejections and send failures. Nil logs
	// nothing.
	Logger *slog.Logger
	// Registerer, if not nil, gets the edgefort_cloud_outbox_* metrics.
	Registerer prom.Registerer
	// Now stamps items enqueued without a Time. Nil means time.Now.
	Now func() time.Time
	// Refused reports whether a send error means the control plane will
	// never take this batch as it is (a 400 or 413, say), as opposed to
	// being unreachable. Run then halves the batch until the one item at
	// fault is alone, and drops it (logged, counted as "refused"), so that
	// one bad report cannot block the queue. Nil: every error is treated
	// as the cloud being unreachable.
	Refused func(error) bool
}

func (o Options) withDefaults() Options {
	if o.MaxItems == 0 {
		o.MaxItems = defaultMaxItems
	}
	if o.Batch == 0 {
		o.Batch = defaultBatch
	}
	if o.Linger == 0 {
		o.Linger = defaultLinger
	}
	if o.Backoff.Initial == 0 {
		o.Backoff.Initial = defaultBackoffInitial
	}
	if o.Backoff.Max == 0 {
		o.Backoff.Max = defaultBackoffMax
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// validate checks o once defaults are set.
func (o Options) validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("store: required"))
	}
	if o.MaxItems < 0 {
		errs = append(errs, fmt.Errorf("max_items: negative (%d)", o.MaxItems))
	}
	if o.Batch < 0 {
		errs = append(errs, fmt.Errorf("batch: negative (%d)", o.Batch))
	}
	if o.Backoff.Initial < 0 {
		errs = append(errs, fmt.Errorf("backoff.initial: negative (%v)", o.Backoff.Initial))
	}
	if o.Backoff.Initial > o.Backoff.Max {
		errs = append(errs, fmt.Errorf("backoff.max: %v is less than backoff.initial %v", o.Backoff.Max, o.Backoff.Initial))
	}
	return errors.Join(errs...)
}

// Outbox is the durable queue. Enqueue, EnqueueTx and Len are safe for
// concurrent use; one Run at a time delivers.
type Outbox struct {
	db       *store.DB
	sender   Sender
	maxItems int
	batch    int
	linger   time.Duration
	refused  func(error) bool
	backoff  Backoff
	log      *slog.Logger
	now      func() time.Time
	rand     func() float64 // in [0, 1); replaced in tests
	metrics  *metrics

	// wake holds a token when items were enqueued since Run last looked.
	wake    chan struct{}
	running atomic.Bool

	// mu serialises the outbox's writes to its bucket, so that the index
	// below always matches what is committed. A writer holds it from inside
	// its transaction until the index is updated after the commit (or the
	// rollback), so nobody sees the index between a write and its commit.
	//
	// Lock order: the store's writer lock (held by whoever is inside
	// db.Update) before mu. Never call db.Update while holding mu: EnqueueTx
	// takes mu inside its caller's transaction, so a goroutine waiting for
	// the writer lock with mu held would deadlock against it. Holding mu
	// after the writer lock is released (until EnqueueTx's done) is
	// harmless, because nobody holding mu ever waits for the writer lock.
	mu      sync.Mutex
	nextSeq uint64   // sequence number of the next item
	low     []uint64 // sequence numbers of the queued low-priority items, ascending
	high    []uint64 // same for high priority
}

// record is an item as stored.
type record struct {
	V        int             `json:"v"`
	Stream   string          `json:"stream"`
	Type     string          `json:"type"`
	Priority Priority        `json:"priority"`
	Key      string          `json:"key"`
	Time     time.Time       `json:"time"`
	Body     json.RawMessage `json:"body,omitempty"`
}

// meta is the queue's state beside the items.
type meta struct {
	V       int    `json:"v"`
	NextSeq uint64 `json:"next_seq"`
}

// New checks opts and loads the queue's state from the store. It starts
// nothing.
func New(opts Options) (*Outbox, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &Outbox{
		db:       opts.Store,
		sender:   opts.Sender,
		maxItems: opts.MaxItems,
		batch:    opts.Batch,
		linger:   opts.Linger,
		refused:  opts.Refused,
		backoff:  opts.Backoff,
		log:      opts.Logger,
		now:      opts.Now,
		rand:     mrand.Float64,
		wake:     make(chan struct{}, 1),
	}
	if err := o.load(); err != nil {
		return nil, fmt.Errorf("outbox: load queue: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o.metrics = m
	o.metrics.queued.Set(float64(o.lenLocked()))
	return o, nil
}

// load reads the sequence numbers and priorities of the queued items and
// the next sequence number.
func (o *Outbox) load() error {
	return o.db.View(func(tx *store.Tx) error {
		b := tx.Bucket(bucketName)
		var m meta
		if _, err := b.Get(metaKey, &m); err != nil {
			return err
		}
		o.nextSeq = m.NextSeq
		return b.ForEach(func(key string, raw json.RawMessage) error {
			if key == metaKey {
				return nil
			}
			seq, ok := parseSeq(key)
			if !ok {
				o.log.Warn("outbox: ignoring a key that is not a sequence number", logKeySeq, key)
				return nil
			}
			// An item that does not decode counts as low priority here;
			// Run drops it when it reaches the head of the queue.
			var r struct {
				Priority Priority `json:"priority"`
			}
			if json.Unmarshal(raw, &r) == nil && r.Priority == High {
				o.high = append(o.high, seq)
			} else {
				o.low = append(o.low, seq)
			}
			o.nextSeq = max(o.nextSeq, seq+1)
			return nil
		})
	})
}

// Len returns the number of queued items.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lenLocked()
}

func (o *Outbox) lenLocked() int { return len(o.low) + len(o.high) }

// Enqueue stores it and returns its idempotency key once it is committed and
// fsynced, then wakes Run. When the queue is full it first drops the oldest
// low-priority item, or, if every queued item is high priority, the oldest
// high-priority one. A high-priority item is never refused; a low-priority
// item arriving at a queue full of high-priority items is itself the one
// dropped, and Enqueue returns its key with an error wrapping ErrFull.
//
// Enqueue takes the store's writer lock; it must not be called inside a
// db.Update (use EnqueueTx there).
func (o *Outbox) Enqueue(ctx context.Context, it Item) (key string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("outbox: enqueue: %w", err)
	}
	// Validated before the transaction, so that a bad item costs none.
	rec, err := o.newRecord(it)
	if err != nil {
		return "", fmt.Errorf("outbox: enqueue: %w", err)
	}
	done := func(bool) {}
	var stageErr error
	err = func() (err error) {
		committed := false
		// Deferred so that a panic inside Update still releases o.mu.
		defer func() { done(committed) }()
		err = o.db.Update(func(tx *store.Tx) error {
			done, stageErr = o.stage(tx, rec)
			if stageErr != nil && !errors.Is(stageErr, ErrFull) {
				return stageErr
			}
			// ErrFull: the new item is not written, but the drops the
			// bound required are, and must commit.
			return nil
		})
		committed = err == nil
		return err
	}()
	if stageErr != nil && !errors.Is(stageErr, ErrFull) {
		return "", stageErr
	}
	if err != nil {
		return "", fmt.Errorf("outbox: enqueue %s/%s: %w", rec.Stream, rec.Type, err)
	}
	return rec.Key, stageErr
}

// EnqueueTx stages it in tx, the caller's read-write transaction on the
// outbox's store, so that the item is queued if and only if tx commits: the
// transactional-outbox pattern, which saves a commit (two fsyncs) when the
// caller records something in the same step. Validation, the idempotency
// key, the bound (drops of the oldest items) and ErrFull are as for
// Enqueue; drops are logged, and Run is woken, only once committed.
//
// done is never nil. The caller must call done exactly once, right after
// db.Update returned, with whether the transaction committed (Update
// returned nil), and whatever err was; done(false) discards the staging
// and changes nothing. Until done, EnqueueTx holds the outbox's lock, so
// the caller must not, in between, call EnqueueTx again (in this
// transaction or another), Enqueue, Len or anything else that writes to
// the store: that would deadlock. A deferred done(committed) also covers a
// panic inside Update.
//
// An error wrapping ErrFull means the item itself was dropped because the
// queue is full of high-priority items; the key is returned, and tx should
// still commit (it may hold drops the bound required). Any other error
// means nothing was queued, but tx may hold some of the outbox's writes:
// the caller must roll it back by returning an error from Update's
// function.
func (o *Outbox) EnqueueTx(tx *store.Tx, it Item) (key string, done func(committed bool), err error) {
	rec, err := o.newRecord(it)
	if err != nil {
		return "", func(bool) {}, fmt.Errorf("outbox: enqueue: %w", err)
	}
	done, err = o.stage(tx, rec)
	if err != nil && !errors.Is(err, ErrFull) {
		return "", done, err
	}
	return rec.Key, done, err
}

func (o *Outbox) newRecord(it Item) (record, error) {
	var errs []error
	if it.Stream == "" {
		errs = append(errs, errors.New("stream: required"))
	}
	if it.Type == "" {
		errs = append(errs, errors.New("type: required"))
	}
	if it.Priority != Low && it.Priority != High {
		errs = append(errs, fmt.Errorf("priority: unknown (%d)", int(it.Priority)))
	}
	if len(it.Body) > 0 && !json.Valid(it.Body) {
		errs = append(errs, errors.New("body: not valid JSON"))
	}
	if err := errors.Join(errs...); err != nil {
		return record{}, err
	}
	if it.Key == "" {
		var b [16]byte
		rand.Read(b[:]) // never fails (crypto/rand)
		it.Key = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if it.Time.IsZero() {
		it.Time = o.now()
	}
	return record{
		V:        recordVersion,
		Stream:   it.Stream,
		Type:     it.Type,
		Priority: it.Priority,
		Key:      it.Key,
		Time:     it.Time,
		Body:     it.Body,
	}, nil
}

// victim is an item dropped to make room.
type victim struct {
	seq      uint64
	priority Priority
	rec      record // as stored; zero if it did not decode
}

// stage writes rec, and drops what the bound requires, in tx. It locks o.mu
// and returns with it held, for done, which updates the index if committed
// and then unlocks, logs the drops and wakes Run. The returned error wraps
// ErrFull if rec itself was the item to drop, and so not written; on any
// other error o.mu is already unlocked and done does nothing.
func (o *Outbox) stage(tx *store.Tx, rec record) (done func(committed bool), err error) {
	o.mu.Lock()
	// Candidates in the order they go: older low items, the new item if low,
	// older high items.
	var dropped []victim
	dropNew := false
	excess := o.lenLocked() + 1 - o.maxItems
	for _, seq := range o.low {
		if len(dropped) >= excess {
			break
		}
		dropped = append(dropped, victim{seq: seq, priority: Low})
	}
	if len(dropped) < excess && rec.Priority == Low {
		dropNew = true
	}
	for _, seq := range o.high {
		if len(dropped)+boolInt(dropNew) >= excess {
			break
		}
		dropped = append(dropped, victim{seq: seq, priority: High})
	}
	seq := o.nextSeq
	if err := o.writeStaged(tx, rec, seq, dropped, dropNew); err != nil {
		o.mu.Unlock()
		return func(bool) {}, fmt.Errorf("outbox: enqueue %s/%s: %w", rec.Stream, rec.Type, err)
	}
	called := false
	done = func(committed bool) {
		if called {
			return // a second call would unlock o.mu twice
		}
		called = true
		if !committed {
			o.mu.Unlock()
			return
		}
		for _, d := range dropped {
			o.forgetLocked(d.seq)
		}
		if !dropNew {
			o.nextSeq = seq + 1
			if rec.Priority == High {
				o.high = append(o.high, seq)
			} else {
				o.low = append(o.low, seq)
			}
		}
		o.metrics.queued.Set(float64(o.lenLocked()))
		o.mu.Unlock()
		for _, d := range dropped {
			o.logDrop(d)
		}
		if dropNew {
			o.logDrop(victim{rec: rec, priority: rec.Priority})
			return
		}
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
	if dropNew {
		return done, fmt.Errorf("outbox: enqueue %s/%s: %w", rec.Stream, rec.Type, ErrFull)
	}
	return done, nil
}

// writeStaged deletes the dropped items, reading their records into dropped
// for the log, and unless dropNew writes rec at seq and the meta.
func (o *Outbox) writeStaged(tx *store.Tx, rec record, seq uint64, dropped []victim, dropNew bool) error {
	b := tx.Bucket(bucketName)
	for i, d := range dropped {
		// The stored record names the dropped item in the log.
		if _, err := b.Get(seqKey(d.seq), &dropped[i].rec); err != nil {
			o.log.Warn("outbox: dropped item does not decode", logKeySeq, d.seq, logKeyError, err)
		}
		if err := b.Delete(seqKey(d.seq)); err != nil {
			return err
		}
	}
	if dropNew {
		return nil
	}
	if err := b.Put(seqKey(seq), rec); err != nil {
		return err
	}
	return b.Put(metaKey, meta{V: recordVersion, NextSeq: seq + 1})
}

// forgetLocked removes seq from the index; it reports whether it was there.
func (o *Outbox) forgetLocked(seq uint64) bool {
	for _, s := range []*[]uint64{&o.low, &o.high} {
		if i, ok := slices.BinarySearch(*s, seq); ok {
			*s = slices.Delete(*s, i, i+1)
			return true
		}
	}
	return false
}

// logDrop logs and counts an item dropped because the queue was full.
func (o *Outbox) logDrop(d victim) {
	args := []any{
		logKeyStream, d.rec.Stream, logKeyType, d.rec.Type, logKeyKey, d.rec.Key,
		logKeySeq, d.seq, logKeyPriority, d.priority.String(),
	}
	if d.priority == High {
		o.metrics.dropped.WithLabelValues(dropFullHigh).Inc()
		o.log.Error("outbox: queue full of high-priority items; dropped the oldest", args...)
		return
	}
	o.metrics.dropped.WithLabelValues(dropFullLow).Inc()
	o.log.Warn("outbox: queue full; dropped the oldest low-priority item", args...)
}

func seqKey(seq uint64) string { return fmt.Sprintf("%0*d", seqWidth, seq) }

func parseSeq(key string) (uint64, bool) {
	if len(key) != seqWidth {
		return 0, false
	}
	seq, err := strconv.ParseUint(key, 10, 64)
	return seq, err == nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
