// Package jobs runs AWS IoT Jobs on the device: it owns the device side of
// the Jobs MQTT API (shared/reference/aws-iot.md §3) over the IoT link, the
// job execution in progress (bucket "iot-jobs" of the agent store), and the
// one worker goroutine that runs job documents through the cloud-event
// handler registry (iot/events).
//
// # Protocol
//
// The link subscribes to [Runner.Subscriptions] and hands those messages to
// [Runner.Handle]; it calls [Runner.OnConnect] after every connect. The
// runner claims work only with start-next: a notify-next that announces an
// execution while the runner is idle makes it publish start-next, and the
// execution in the start-next/accepted answer is the one it runs. (Taking
// the execution from notify-next directly would race the start-next that
// OnConnect sends; start-next is the service's atomic "give me the next one
// and mark it IN_PROGRESS".)
//
// For one execution:
//
//  1. The execution (jobId, versionNumber, operation, document, attempts)
//     is recorded in the store before anything else.
//  2. The document is a JSON object {"operation": "<type>", ...}. An
//     operation with no registered handler (or a document without one) is
//     answered REJECTED with statusDetails {"reason": "unknown operation X"}
//     without running anything.
//  3. Otherwise the runner updates the execution to IN_PROGRESS with
//     statusDetails {"step": "running", "attempt": "N"}, and once that is
//     accepted it runs the handler with an [events.Event] whose ID is
//     "job-<jobId>-<executionNumber>" (the idempotency key a webhook
//     carries: the same for every run of one execution, new for an
//     execution AWS retries), Type the operation and Body the document.
//  4. A Result of status done becomes SUCCEEDED with statusDetails
//     {"detail", "body"} (body only if it is at most [MaxBodyDetail]
//     bytes); failed becomes FAILED and rejected REJECTED, both with
//     {"reason": detail}. A handler error leaves the execution IN_PROGRESS
//     and the handler runs again after Options.RetryDelay, up to
//     Options.MaxAttempts runs in all; then FAILED with the last error.
//  5. The final status is recorded in the store before it is sent; once the
//     service accepts it the record is deleted and start-next asks for the
//     next job.
//
// Every update carries expectedVersion (the versionNumber of the execution,
// advanced by each accepted answer, which is asked to include the
// execution state) and a clientToken; answers whose clientToken is not the
// request's are stale and ignored. A VersionMismatch or
// InvalidStateTransition rejection carries the execution's state: if it is
// still IN_PROGRESS the update is resent with that version; if it is
// terminal the execution is over (the update was applied before, or the
// job was canceled) and the runner moves on. Without a state the runner
// re-fetches with start-next, which answers the IN_PROGRESS execution
// first. A request that gets no answer within Options.ReplyTimeout, or
// could not be sent, is resent (the same clientToken) on the next connect
// or timeout.
//
// # Restarts
//
// A restart mid-job finds the record in the store. If the handler had
// finished (the record holds the final status), the final update is sent
// again: nothing runs twice. If the handler was interrupted, the runner
// cannot know which of its side effects happened. It runs the handler
// again while attempts remain (an interrupted run counts as an attempt),
// so side effects are at least once and handlers must be idempotent, as
// the event handlers of iot/events already must be (Event.ID is the same
// on every run and may be used as an idempotency key). When no attempt
// remains the execution is reported FAILED with reason "interrupted by a
// restart". Set MaxAttempts to 1 for handlers that must never run twice:
// an interrupted job then always ends FAILED, honestly.
//
// Only one job runs at a time: a new execution is claimed only after the
// current one's final status was accepted (or the service said it ended).
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/iot/events"
)

// Defaults for the zero fields of Options.
const (
	DefaultMaxAttempts    = 3
	DefaultRetryDelay     = 30 * time.Second
	DefaultReplyTimeout   = 30 * time.Second
	DefaultHandlerTimeout = 10 * time.Minute
	// MaxBodyDetail is the largest handler Result body copied into the
	// SUCCEEDED statusDetails, in bytes.
	MaxBodyDetail = 1024
)

const (
	bucketName = "iot-jobs"
	recordKey  = "current"
	publishTO  = 10 * time.Second
	// maxResends bounds how often one request is resent or re-fetched
	// before the runner gives the execution up locally.
	maxResends = 20
	inboxSize  = 64
)

// Execution statuses the device sets.
const (
	StatusInProgress = "IN_PROGRESS"
	StatusSucceeded  = "SUCCEEDED"
	StatusFailed     = "FAILED"
	StatusRejected   = "REJECTED"
)

// Publisher sends a message at QoS 1; *iot.Link is one.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte) error
}

// Handlers looks up the handler of an operation; *events.Dispatcher is one.
type Handlers interface {
	Handler(typ string) (events.HandlerFunc, bool)
}

// Options configures New.
type Options struct {
	// Thing is the thing name. Required.
	Thing string
	// Publisher sends the Jobs requests. Required.
	Publisher Publisher
	// Handlers runs the job documents. Required.
	Handlers Handlers
	// Store holds the execution in progress, bucket "iot-jobs". Required.
	Store *store.DB
	// Logger receives the runner's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Registerer, if set, receives the edgefort_iot_jobs_* metrics.
	Registerer prom.Registerer

	// MaxAttempts is how many times one execution's handler may be started
	// (runs that returned an error or were cut by a restart). Zero means
	// DefaultMaxAttempts.
	MaxAttempts int
	// RetryDelay is the wait before a handler that returned an error runs
	// again. Zero means DefaultRetryDelay.
	RetryDelay time.Duration
	// ReplyTimeout is how long a request waits for its answer before it is
	// resent. Zero means DefaultReplyTimeout.
	ReplyTimeout time.Duration
	// HandlerTimeout bounds one handler run. Zero means
	// DefaultHandlerTimeout.
	HandlerTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.ReplyTimeout == 0 {
		o.ReplyTimeout = DefaultReplyTimeout
	}
	if o.HandlerTimeout == 0 {
		o.HandlerTimeout = DefaultHandlerTimeout
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	switch {
	case o.Thing == "":
		errs = append(errs, errors.New("thing: required"))
	case strings.ContainsAny(o.Thing, "/+#"):
		errs = append(errs, fmt.Errorf("thing: %q contains / + or #", o.Thing))
	}
	if o.Publisher == nil {
		errs = append(errs, errors.New("publisher: required"))
	}
	if o.Handlers == nil {
		errs = append(errs, errors.New("handlers: required"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("store: required"))
	}
	if o.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max_attempts: %d is not positive", o.MaxAttempts))
	}
	if o.RetryDelay < 0 || o.ReplyTimeout < 0 || o.HandlerTimeout < 0 {
		errs = append(errs, errors.New("retry_delay, reply_timeout, handler_timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// Runner runs the thing's jobs; see the package comment. Handle and
// OnConnect may be called from any goroutine; Run must be called once.
type Runner struct {
	opts    Options
	log     *slog.Logger
	prefix  string // $aws/things/<thing>/jobs/
	bucket  *store.Bucket
	metrics *metrics

	in        chan message  // from Handle to the worker
	connected chan struct{} // OnConnect's signal, coalesced
	started   atomic.Bool   // Run called
}

// New checks opts and registers the metrics. It starts nothing.
func New(opts Options) (*Runner, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Runner{
		opts:      o,
		log:       o.Logger.With("component", "iot-jobs"),
		prefix:    "$aws/things/" + o.Thing + "/jobs/",
		bucket:    o.Store.Bucket(bucketName),
		metrics:   m,
		in:        make(chan message, inboxSize),
		connected: make(chan struct{}, 1),
	}, nil
}

// Subscriptions are the topic filters the link must subscribe to.
func (r *Runner) Subscriptions() []string {
	return []string{
		r.prefix + "notify-next",
		r.prefix + "start-next/accepted",
		r.prefix + "start-next/rejected",
		r.prefix + "+/update/accepted",
		r.prefix + "+/update/rejected",
	}
}

// OnConnect tells the worker the link is up: it resumes an execution
// recorded in the store (or resends the request awaiting an answer) and
// otherwise asks for the next job. It does not wait for any of that.
func (r *Runner) OnConnect(context.Context) {
	select {
	case r.connected <- struct{}{}:
	default: // a signal is already pending
	}
}

// Message kinds.
const (
	kindNotifyNext = iota + 1
	kindStartNextAccepted
	kindStartNextRejected
	kindUpdateAccepted
	kindUpdateRejected
)

type message struct {
	kind  int
	jobID string // for updates: the job in the topic
	body  reply
}

// reply is the union of the answers' and events' fields used here.
type reply struct {
	Execution      *execution      `json:"execution"`
	ExecutionState *executionState `json:"executionState"`
	ClientToken    string          `json:"clientToken"`
	Code           string          `json:"code"`
	Message        string          `json:"message"`
}

type execution struct {
	JobID         string            `json:"jobId"`
	ThingName     string            `json:"thingName"`
	JobDocument   json.RawMessage   `json:"jobDocument"`
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails"`
	VersionNumber int64             `json:"versionNumber"`
	// ExecutionNumber tells apart the executions of one job on one thing:
	// AWS's retry configuration starts a new one after a failure.
	ExecutionNumber int64 `json:"executionNumber"`
}

type executionState struct {
	Status        string            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails"`
	VersionNumber int64             `json:"versionNumber"`
}

// Handle takes one message on a topic of Subscriptions. It returns an
// error only when the message must be redelivered: ctx ended before the
// worker took it. Messages on other topics or that do not decode are
// logged and dropped.
func (r *Runner) Handle(ctx context.Context, topic string, payload []byte) error {
	m, ok := r.parse(topic)
	if !ok {
		r.log.Warn("jobs: message on an unexpected topic dropped", "topic", topic)
		return nil
	}
	if err := json.Unmarshal(payload, &m.body); err != nil {
		r.metrics.malformed.Inc()
		r.log.Warn("jobs: malformed message dropped", "topic", topic, "error", err)
		return nil
	}
	if x := m.body.Execution; x != nil && x.ThingName != "" && x.ThingName != r.opts.Thing {
		r.log.Warn("jobs: execution of another thing dropped", "topic", topic, "thing", x.ThingName)
		return nil
	}
	select {
	case r.in <- m:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jobs: %s not taken: %w", topic, ctx.Err())
	}
}

// parse classifies topic; it checks that the thing is ours.
func (r *Runner) parse(topic string) (message, bool) {
	rest, ok := strings.CutPrefix(topic, r.prefix)
	if !ok {
		return message{}, false
	}
	switch rest {
	case "notify-next":
		return message{kind: kindNotifyNext}, true
	case "start-next/accepted":
		return message{kind: kindStartNextAccepted}, true
	case "start-next/rejected":
		return message{kind: kindStartNextRejected}, true
	}
	parts := strings.Split(rest, "/")
	if len(parts) == 3 && parts[0] != "" && parts[1] == "update" {
		switch parts[2] {
		case "accepted":
			return message{kind: kindUpdateAccepted, jobID: parts[0]}, true
		case "rejected":
			return message{kind: kindUpdateRejected, jobID: parts[0]}, true
		}
	}
	return message{}, false
}
