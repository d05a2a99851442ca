package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
)

// Result statuses.
const (
	StatusDone     = "done"     // the handler did what the event asked
	StatusFailed   = "failed"   // the handler ran and failed for good
	StatusRejected = "rejected" // the event was not acceptable: malformed or unknown type
)

// Defaults.
const (
	DefaultRetention      = 10000
	DefaultHandlerTimeout = 30 * time.Second
	DefaultMaxAttempts    = 10
)

// Limits on an event's fields; longer ones are rejected.
const (
	MaxIDLen   = 256
	MaxTypeLen = 128
)

// Log keys.
const (
	logKeyID       = "event_id"
	logKeyType     = "event_type"
	logKeyTopic    = "topic"
	logKeyError    = "error"
	logKeyStatus   = "status"
	logKeyDetail   = "detail"
	logKeyAttempt  = "attempt"
	logKeySize     = "payload_size"
	logKeyPrefix   = "payload_prefix"
	logPayloadHead = 128 // bytes of a malformed payload that are logged
)

// Event is one cloud event.
type Event struct {
	// ID identifies the event; redeliveries carry the same one.
	ID string
	// Type selects the handler, e.g. "update.check".
	Type string
	// Time is when the cloud emitted the event; zero if it did not say.
	Time time.Time
	// Body is the event's JSON body; nil if it had none.
	Body json.RawMessage
}

// Result is what became of an event; it is recorded and reported.
type Result struct {
	// Status is StatusDone, StatusFailed or StatusRejected.
	Status string `json:"status"`
	// Detail says why, for people; empty is fine for StatusDone.
	Detail string `json:"detail,omitempty"`
	// Body is the handler's JSON output, if any. It must be valid JSON.
	Body json.RawMessage `json:"body,omitempty"`
}

// HandlerFunc handles one event. A Result (of any status) means the event is
// handled and must not run again; an error means "try again later" (the
// message is not acknowledged and the broker redelivers it) unless it is
// wrapped with [Permanent], which records a failed Result. ctx ends when the
// handler's timeout does.
type HandlerFunc func(ctx context.Context, ev Event) (Result, error)

// Reporter reports an event's result; the agent adapts the outbox (stream
// "events", type "event.result") and should use ev.ID as the idempotency
// key: after a crash at the wrong moment one result may be reported twice.
type Reporter interface {
	Report(ctx context.Context, ev Event, res Result) error
}

// TxReporter is a Reporter that can stage the report in the transaction that
// records the result, so that the report is queued if and only if the
// result is recorded, and the record notes it reported in the same write:
// one commit (two fsyncs) instead of three for the done record, the report
// and the note. The agent's outbox adapter implements it with
// outbox.EnqueueTx; tx is a transaction on Options.Store, which must
// therefore also be the store the report is queued in.
//
// ReportTx runs inside the dispatcher's db.Update. done, if not nil, is
// called exactly once, right after that Update returned (before the
// dispatcher writes to the store again), with whether the transaction
// committed; it is called with false when ReportTx returned an error, since
// the dispatcher then rolls the transaction back. On an error the event is
// not failed: its result is recorded in a fresh transaction without the
// report, which then goes through Report as for a plain Reporter.
type TxReporter interface {
	Reporter
	ReportTx(tx *store.Tx, ev Event, res Result) (done func(committed bool), err error)
}

// Options configures New.
type Options struct {
	// Store holds the event records, in bucket "iot-events". Required.
	Store *store.DB
	// Reporter receives every result. Optional: nil reports nothing. A
	// TxReporter has the report staged with the record of the result.
	Reporter Reporter
	// Retention is how many event ids are remembered for deduplication;
	// the oldest are forgotten first. Zero means DefaultRetention.
	Retention int
	// HandlerTimeout bounds one handler run unless Register says
	// otherwise. Zero means DefaultHandlerTimeout.
	HandlerTimeout time.Duration
	// MaxAttempts is how many times an event's handler may be started
	// (runs that returned an error or never finished, because the process
	// died) before the event is recorded failed. Zero means
	// DefaultMaxAttempts.
	MaxAttempts int
	// Logger receives the dispatcher's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Registerer, if set, receives the edgefort_iot_events_* metrics.
	Registerer prom.Registerer
}

func (o Options) withDefaults() Options {
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.HandlerTimeout == 0 {
		o.HandlerTimeout = DefaultHandlerTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("store: required"))
	}
	if o.Retention < 1 {
		errs = append(errs, fmt.Errorf("retention: %d is not positive", o.Retention))
	}
	if o.HandlerTimeout < 0 {
		errs = append(errs, fmt.Errorf("handler_timeout: %v is negative", o.HandlerTimeout))
	}
	if o.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max_attempts: %d is not positive", o.MaxAttempts))
	}
	return errors.Join(errs...)
}

// Dispatcher records events and runs their handlers. Its methods are safe
// for concurrent use.
type Dispatcher struct {
	opts    Options // defaults filled in
	log     *slog.Logger
	metrics *metrics
	records *records

	mu       sync.Mutex               // guards handlers and inflight
	handlers map[string]registration  // by event type
	inflight map[string]chan struct{} // ids being handled; closed when done
}

type registration struct {
	h       HandlerFunc
	timeout time.Duration
}

// New checks opts and registers the metrics. It starts nothing.
func New(opts Options) (*Dispatcher, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return &Dispatcher{
		opts:     o,
		log:      o.Logger,
		metrics:  m,
		records:  &records{db: o.Store, retention: o.Retention, now: o.Now},
		handlers: make(map[string]registration),
		inflight: make(map[string]chan struct{}),
	}, nil
}

// RegisterOption adjusts one registration.
type RegisterOption func(*registration)

// WithTimeout bounds the handler's runs to d instead of
// Options.HandlerTimeout.
func WithTimeout(d time.Duration) RegisterOption {
	return func(r *registration) { r.timeout = d }
}

// Register makes h handle events of type typ. Registering a type twice is
// an error.
func (d *Dispatcher) Register(typ string, h HandlerFunc, opts ...RegisterOption) error {
	if typ == "" || len(typ) > MaxTypeLen {
		return fmt.Errorf("events: register %q: type must be 1 to %d bytes", typ, MaxTypeLen)
	}
	if h == nil {
		return fmt.Errorf("events: register %q: handler is nil", typ)
	}
	r := registration{h: h, timeout: d.opts.HandlerTimeout}
	for _, o := range opts {
		o(&r)
	}
	if r.timeout <= 0 {
		return fmt.Errorf("events: register %q: timeout %v is not positive", typ, r.timeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.handlers[typ]; ok {
		return fmt.Errorf("events: register %q: type already registered", typ)
	}
	d.handlers[typ] = r
	return nil
}

// Handler returns the handler registered for typ, for other carriers of
// the same operations (AWS IoT Jobs run their documents through it).
func (d *Dispatcher) Handler(typ string) (HandlerFunc, bool) {
	reg, ok := d.handler(typ)
	return reg.h, ok
}

func (d *Dispatcher) handler(typ string) (registration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.handlers[typ]
	return r, ok
}

// permanentError marks a handler error as final.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as final: the event is recorded failed with err as
// the detail instead of being retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// Done, Failed and Rejected build Results.
func Done(body json.RawMessage) Result { return Result{Status: StatusDone, Body: body} }

// Failed is a Result with StatusFailed and detail.
func Failed(detail string) Result { return Result{Status: StatusFailed, Detail: detail} }

// Rejected is a Result with StatusRejected and detail.
func Rejected(detail string) Result { return Result{Status: StatusRejected, Detail: detail} }
