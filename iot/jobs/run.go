package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/edgefort/edgefort/iot/events"
)

// record is the execution in progress, as stored at recordKey.
type record struct {
	JobID     string          `json:"job_id"`
	Execution int64           `json:"execution,omitempty"` // executionNumber; 0 in records of earlier versions
	Version   int64           `json:"version"`             // expectedVersion of the next update
	Operation string          `json:"operation"`
	Document  json.RawMessage `json:"document"`
	// State is "running" until the handler's outcome is known, then
	// "finishing" with FinalStatus and FinalDetails set.
	State        string            `json:"state"`
	Attempts     int               `json:"attempts"` // handler runs started
	FinalStatus  string            `json:"final_status,omitempty"`
	FinalDetails map[string]string `json:"final_details,omitempty"`
}

// eventID is the id the handler gets: the same on every run of this
// execution, so side effects can be deduplicated by it. A record written
// before the execution number was kept runs on with the id it had.
func (r *record) eventID() string {
	if r.Execution == 0 {
		return "job-" + r.JobID
	}
	return "job-" + r.JobID + "-" + strconv.FormatInt(r.Execution, 10)
}

const (
	stateRunning   = "running"
	stateFinishing = "finishing"
)

// Phases of the worker.
const (
	phaseIdle      = iota
	phaseStarting  // IN_PROGRESS update sent, the handler runs once it is accepted
	phaseRunning   // the handler goroutine runs
	phaseWaiting   // the handler failed; waiting RetryDelay
	phaseFinishing // the final update sent
)

// request is the one request awaiting its answer.
type request struct {
	startNext bool
	token     string
	status    string // update only
	details   map[string]string
	// refetchFor is the update to resend once a start-next issued as a
	// re-fetch (after a VersionMismatch without state) is answered.
	refetchFor *request
}

type outcome struct {
	res events.Result
	err error
}

// worker is the state of Run's goroutine; only that goroutine touches it.
type worker struct {
	r   *Runner
	ctx context.Context

	cur       *record
	phase     int
	out       *request
	rejects   int // rejections of the current request, bounded by maxResends
	abandoned bool

	replyC <-chan time.Time
	retryC <-chan time.Time

	handlerDone   chan outcome
	handlerCancel context.CancelFunc

	tokenPrefix string
	tokenSeq    int
}

// Run is the worker: it takes the messages Handle received, runs at most
// one handler at a time on a goroutine of its own and sends the updates.
// It returns nil when ctx ends, after the running handler (whose ctx ends
// too) returned. Handlers must honour ctx; a run cut short this way is
// resumed as the package comment says.
func (r *Runner) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("jobs: Run called twice")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	w := &worker{r: r, ctx: ctx, handlerDone: make(chan outcome, 1), tokenPrefix: "ef" + hex.EncodeToString(b[:])}
	if err := w.load(); err != nil {
		r.log.Error("jobs: cannot read the execution in progress; starting without it", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			w.shutdown()
			return nil
		case <-r.connected:
			w.onConnect()
		case m := <-r.in:
			w.onMessage(m)
		case o := <-w.handlerDone:
			w.onOutcome(o)
		case <-w.replyC:
			w.replyC = nil
			if w.out != nil {
				r.log.Info("jobs: no answer, resending", "job", w.jobID(), "client_token", w.out.token)
				w.send(w.out)
			}
		case <-w.retryC:
			w.retryC = nil
			if w.phase == phaseWaiting {
				w.startRun()
			}
		}
	}
}

func (w *worker) jobID() string {
	if w.cur == nil {
		return ""
	}
	return w.cur.JobID
}

// load prepares what the first connect resumes.
func (w *worker) load() error {
	var rec record
	found, err := w.r.bucket.Get(recordKey, &rec)
	if err != nil || !found {
		return err
	}
	w.cur = &rec
	w.r.metrics.running.Set(1)
	log := w.r.log.With("job", rec.JobID, "attempts", rec.Attempts)
	switch {
	case rec.State == stateFinishing:
		log.Info("jobs: resuming: resending the final status", "status", rec.FinalStatus)
		w.phase = phaseFinishing
		w.out = w.newUpdate(rec.FinalStatus, rec.FinalDetails)
	case rec.Attempts >= w.r.opts.MaxAttempts:
		log.Warn("jobs: resuming: the handler was interrupted by a restart and no attempt remains; reporting FAILED")
		w.finish(StatusFailed, map[string]string{
			"reason":   "interrupted by a restart",
			"attempts": strconv.Itoa(rec.Attempts),
		}, false)
	default:
		if rec.Attempts > 0 {
			log.Warn("jobs: resuming: the handler was interrupted by a restart; running it again")
		}
		w.phase = phaseStarting
		w.out = w.inProgress()
	}
	return nil
}

func (w *worker) onConnect() {
	switch {
	case w.out != nil:
		w.send(w.out)
	case w.cur == nil:
		w.startNext(nil)
	}
}

func (w *worker) onMessage(m message) {
	log := w.r.log
	switch m.kind {
	case kindNotifyNext:
		// The link's workers may hand messages over out of order, so this
		// notification may overtake the answer to a start-next already
		// sent (which may have found nothing): ask again. The earlier
		// answer becomes stale; an execution it moved to IN_PROGRESS is
		// what the new start-next returns first.
		if w.cur == nil && m.body.Execution != nil {
			w.startNext(nil)
		}
	case kindStartNextAccepted:
		if w.out == nil || !w.out.startNext || w.out.token != m.body.ClientToken {
			return // stale
		}
		req := w.out
		w.answered()
		x := m.body.Execution
		if req.refetchFor != nil && w.cur != nil {
			if x != nil && x.JobID == w.cur.JobID && x.Status == StatusInProgress {
				w.cur.Version = x.VersionNumber
				w.persist()
				w.send(w.newUpdate(req.refetchFor.status, req.refetchFor.details))
				return
			}
			w.ended("no longer the next pending execution")
			return
		}
		if w.cur != nil {
			return
		}
		if x == nil {
			log.Debug("jobs: no pending job")
			return
		}
		w.adopt(x)
	case kindStartNextRejected:
		if w.out == nil || !w.out.startNext || w.out.token != m.body.ClientToken {
			return
		}
		log.Warn("jobs: start-next rejected; retrying later", "code", m.body.Code, "message", m.body.Message)
		w.replyC = time.After(w.r.opts.RetryDelay)
	case kindUpdateAccepted:
		if w.out == nil || w.out.startNext || w.out.token != m.body.ClientToken || m.jobID != w.jobID() {
			return
		}
		req := w.out
		w.answered()
		if s := m.body.ExecutionState; s != nil {
			w.cur.Version = s.VersionNumber
		} else {
			w.cur.Version++
		}
		if req.status == StatusInProgress {
			if w.abandoned {
				return
			}
			w.persist()
			w.runHandler()
			return
		}
		log.Info("jobs: job finished", "job", w.cur.JobID, "status", req.status)
		w.r.metrics.completed.WithLabelValues(req.status).Inc()
		w.clear()
		w.startNext(nil)
	case kindUpdateRejected:
		if w.out == nil || w.out.startNext || w.out.token != m.body.ClientToken || m.jobID != w.jobID() {
			return
		}
		w.onUpdateRejected(m.body)
	}
}

func (w *worker) onUpdateRejected(b reply) {
	req := w.out
	log := w.r.log.With("job", w.cur.JobID, "code", b.Code, "message", b.Message, "status", req.status)
	w.rejects++
	if w.rejects > maxResends {
		log.Error("jobs: update rejected too often; giving the execution up locally")
		w.answered()
		w.ended("update rejected too often")
		return
	}
	s := b.ExecutionState
	switch {
	case s != nil && s.Status == StatusInProgress:
		log.Info("jobs: update rejected; resending with the current version", "version", s.VersionNumber)
		w.cur.Version = s.VersionNumber
		w.persist()
		w.send(w.newUpdate(req.status, req.details))
	case s != nil && isTerminal(s.Status):
		log.Info("jobs: the execution is already over", "cloud_status", s.Status)
		w.answered()
		if s.Status == req.status {
			w.r.metrics.completed.WithLabelValues(req.status).Inc()
		}
		w.ended("execution is " + s.Status)
	case b.Code == "TerminalStateReached" || b.Code == "ResourceNotFound":
		log.Info("jobs: the execution is gone or over")
		w.answered()
		w.ended(b.Code)
	case b.Code == "VersionMismatch" || b.Code == "InvalidStateTransition":
		log.Info("jobs: update rejected without the execution state; re-fetching")
		w.answered()
		w.startNext(req)
	default:
		log.Warn("jobs: update rejected; resending later")
		w.replyC = time.After(w.r.opts.RetryDelay)
	}
}

// adopt records x as the execution in progress and starts it.
func (w *worker) adopt(x *execution) {
	op := operation(x.JobDocument)
	w.cur = &record{JobID: x.JobID, Execution: x.ExecutionNumber, Version: x.VersionNumber, Operation: op, Document: x.JobDocument, State: stateRunning}
	w.abandoned = false
	if err := w.r.bucket.Put(recordKey, w.cur); err != nil {
		w.r.log.Error("jobs: cannot record the execution; not running it", "job", x.JobID, "error", err)
		w.cur = nil
		return
	}
	w.r.metrics.started.Inc()
	w.r.metrics.running.Set(1)
	log := w.r.log.With("job", x.JobID, "operation", op, "version", x.VersionNumber)
	if _, ok := w.r.opts.Handlers.Handler(op); !ok {
		log.Warn("jobs: unknown operation; rejecting the job")
		reason := "unknown operation " + strconv.Quote(op)
		if op == "" {
			reason = "the job document has no operation"
		}
		w.finish(StatusRejected, map[string]string{"reason": reason}, true)
		return
	}
	log.Info("jobs: job claimed")
	w.startRun()
}

// startRun reports IN_PROGRESS; the handler runs when it is accepted.
func (w *worker) startRun() {
	w.phase = phaseStarting
	w.send(w.inProgress())
}

func (w *worker) inProgress() *request {
	return w.newUpdate(StatusInProgress, map[string]string{
		"step":    "running",
		"attempt": strconv.Itoa(w.cur.Attempts + 1),
	})
}

func (w *worker) runHandler() {
	h, ok := w.r.opts.Handlers.Handler(w.cur.Operation)
	if !ok { // unregistered since adopt
		w.finish(StatusRejected, map[string]string{"reason": "unknown operation " + strconv.Quote(w.cur.Operation)}, true)
		return
	}
	w.cur.Attempts++
	if err := w.r.bucket.Put(recordKey, w.cur); err != nil {
		// Running without the attempt recorded could loop across restarts.
		w.r.log.Error("jobs: cannot record the attempt; retrying later", "job", w.cur.JobID, "error", err)
		w.cur.Attempts--
		w.phase = phaseWaiting
		w.retryC = time.After(w.r.opts.RetryDelay)
		return
	}
	w.phase = phaseRunning
	ev := events.Event{ID: w.cur.eventID(), Type: w.cur.Operation, Body: w.cur.Document}
	hctx, cancel := context.WithTimeout(w.ctx, w.r.opts.HandlerTimeout)
	w.handlerCancel = cancel
	w.r.log.Info("jobs: running", "job", w.cur.JobID, "operation", w.cur.Operation, "attempt", w.cur.Attempts)
	start := time.Now()
	go func() {
		res, err := safeCall(hctx, h, ev)
		w.r.metrics.handlerSeconds.Observe(time.Since(start).Seconds())
		w.handlerDone <- outcome{res, err}
	}()
}

func safeCall(ctx context.Context, h events.HandlerFunc, ev events.Event) (res events.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, ev)
}

func (w *worker) onOutcome(o outcome) {
	if w.ctx.Err() != nil { // stopping: the handler was cut short, or raced the stop
		w.stopped(o)
		return
	}
	w.handlerCancel()
	w.handlerCancel = nil
	if w.abandoned {
		w.r.log.Info("jobs: handler finished for an execution that is over; result dropped", "job", w.cur.JobID)
		w.clear()
		w.startNext(nil)
		return
	}
	if o.err != nil {
		log := w.r.log.With("job", w.cur.JobID, "attempt", w.cur.Attempts, "error", o.err)
		if w.cur.Attempts >= w.r.opts.MaxAttempts {
			log.Warn("jobs: handler failed; no attempt remains")
			w.finish(StatusFailed, map[string]string{
				"reason":   truncate(o.err.Error()),
				"attempts": strconv.Itoa(w.cur.Attempts),
			}, true)
			return
		}
		log.Warn("jobs: handler failed; retrying later", "delay", w.r.opts.RetryDelay)
		w.phase = phaseWaiting
		w.retryC = time.After(w.r.opts.RetryDelay)
		return
	}
	status, details := final(o.res)
	w.finish(status, details, true)
}

// final maps a handler Result to the execution's final status.
func final(res events.Result) (string, map[string]string) {
	switch res.Status {
	case events.StatusDone:
		d := map[string]string{}
		if res.Detail != "" {
			d["detail"] = truncate(res.Detail)
		}
		if len(res.Body) > 0 && len(res.Body) <= MaxBodyDetail {
			d["body"] = string(res.Body)
		}
		return StatusSucceeded, d
	case events.StatusRejected:
		return StatusRejected, map[string]string{"reason": truncate(res.Detail)}
	case events.StatusFailed:
		return StatusFailed, map[string]string{"reason": truncate(res.Detail)}
	default:
		return StatusFailed, map[string]string{"reason": "handler returned status " + strconv.Quote(res.Status)}
	}
}

// finish records the final status, then (if send) sends it.
func (w *worker) finish(status string, details map[string]string, send bool) {
	w.cur.State = stateFinishing
	w.cur.FinalStatus = status
	w.cur.FinalDetails = details
	w.persist()
	w.phase = phaseFinishing
	req := w.newUpdate(status, details)
	if send {
		w.send(req)
	} else {
		w.out = req
	}
}

// ended forgets an execution the service says is over (or that was given
// up), and asks for the next one unless its handler still runs.
func (w *worker) ended(why string) {
	if w.cur == nil {
		return
	}
	w.r.log.Info("jobs: execution over", "job", w.cur.JobID, "why", why)
	if w.phase == phaseRunning {
		w.abandoned = true
		return
	}
	w.clear()
	w.startNext(nil)
}

func (w *worker) clear() {
	if err := w.r.bucket.Delete(recordKey); err != nil {
		w.r.log.Error("jobs: cannot delete the execution record", "job", w.jobID(), "error", err)
	}
	w.cur = nil
	w.phase = phaseIdle
	w.abandoned = false
	w.retryC = nil
	w.r.metrics.running.Set(0)
}

func (w *worker) persist() {
	if err := w.r.bucket.Put(recordKey, w.cur); err != nil {
		w.r.log.Error("jobs: cannot record the execution", "job", w.cur.JobID, "error", err)
	}
}

func (w *worker) answered() {
	w.out = nil
	w.replyC = nil
	w.rejects = 0
}

func (w *worker) token() string {
	w.tokenSeq++
	return w.tokenPrefix + "-" + strconv.Itoa(w.tokenSeq)
}

func (w *worker) newUpdate(status string, details map[string]string) *request {
	return &request{token: w.token(), status: status, details: details}
}

func (w *worker) startNext(refetchFor *request) {
	w.send(&request{startNext: true, token: w.token(), refetchFor: refetchFor})
}

// send makes req the request awaiting an answer and publishes it. A failed
// publish is retried on the next connect or after ReplyTimeout.
func (w *worker) send(req *request) {
	w.out = req
	w.replyC = time.After(w.r.opts.ReplyTimeout)
	var topic string
	var body map[string]any
	if req.startNext {
		topic = w.r.prefix + "start-next"
		body = map[string]any{"clientToken": req.token}
	} else {
		topic = w.r.prefix + w.cur.JobID + "/update"
		body = map[string]any{
			"status":                   req.status,
			"statusDetails":            req.details,
			"expectedVersion":          w.cur.Version,
			"includeJobExecutionState": true,
			"clientToken":              req.token,
		}
	}
	payload, err := json.Marshal(body)
	if err != nil {
		w.r.log.Error("jobs: encode request", "topic", topic, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(w.ctx, publishTO)
	defer cancel()
	if err := w.r.opts.Publisher.Publish(ctx, topic, payload); err != nil {
		w.r.log.Info("jobs: publish failed; will resend", "topic", topic, "error", err)
		return
	}
	w.r.log.Debug("jobs: sent", "topic", topic, "status", req.status, "client_token", req.token)
}

// shutdown waits for a running handler. Its Result, if it produced one, is
// recorded so that the next start reports it instead of running again.
func (w *worker) shutdown() {
	if w.phase != phaseRunning {
		return
	}
	w.stopped(<-w.handlerDone)
}

// stopped records the outcome of a handler that returned while Run stops.
func (w *worker) stopped(o outcome) {
	w.handlerCancel()
	w.phase = phaseIdle // nothing more is sent; the store has the state
	if o.err != nil || w.abandoned {
		w.r.log.Info("jobs: stopped while the handler ran; the next start resumes the job", "job", w.cur.JobID)
		return
	}
	status, details := final(o.res)
	w.cur.State = stateFinishing
	w.cur.FinalStatus = status
	w.cur.FinalDetails = details
	w.persist()
}

// operation is the document's "operation", or "" if there is none.
func operation(doc json.RawMessage) string {
	var d struct {
		Operation string `json:"operation"`
	}
	if json.Unmarshal(doc, &d) != nil {
		return ""
	}
	return d.Operation
}

func isTerminal(status string) bool {
	switch status {
	case "SUCCEEDED", "FAILED", "REJECTED", "REMOVED", "CANCELED", "TIMED_OUT":
		return true
	}
	return false
}

const maxDetail = 512

func truncate(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	return s[:maxDetail] + "…"
}
