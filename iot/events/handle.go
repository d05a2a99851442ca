package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgefort/edgefort/internal/store"
)

// Handle parses one message from the events topic, records it and runs its
// handler once. It is the link's iot.Options.Handler (through a one-line
// adapter): nil means the message may be acknowledged, an error that it
// must be redelivered later. Malformed messages, unknown types and
// duplicates return nil.
func (d *Dispatcher) Handle(ctx context.Context, topic string, payload []byte) error {
	ev, perr := Parse(payload)
	if perr != nil {
		d.metrics.malformed.Inc()
		d.log.Warn("malformed event",
			slog.String(logKeyTopic, topic), slog.String(logKeyID, ev.ID), slog.Any(logKeyError, perr),
			slog.Int(logKeySize, len(payload)), slog.String(logKeyPrefix, head(payload)))
		if ev.ID == "" {
			return nil // nothing to record or report it under
		}
	}
	for {
		done, mine := d.claim(ev.ID)
		if mine {
			return d.handleClaimed(ctx, ev, perr, done)
		}
		// A redelivery while this process handles the same id: wait for
		// that run, then look again (it may have ended in an error).
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("event %s: wait for the run under way: %w", ev.ID, ctx.Err())
		}
	}
}

// claim marks id as being handled in this process. If it already is, it
// returns the channel that closes when that run ends, and mine false.
func (d *Dispatcher) claim(id string) (done chan struct{}, mine bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ch, ok := d.inflight[id]; ok {
		return ch, false
	}
	ch := make(chan struct{})
	d.inflight[id] = ch
	return ch, true
}

func (d *Dispatcher) release(id string, done chan struct{}) {
	d.mu.Lock()
	delete(d.inflight, id)
	d.mu.Unlock()
	close(done)
}

// handleClaimed handles ev, whose id this goroutine has claimed. perr, if
// not nil, is why ev was rejected by Parse.
func (d *Dispatcher) handleClaimed(ctx context.Context, ev Event, perr error, done chan struct{}) error {
	defer d.release(ev.ID, done)

	// The common duplicate needs no write transaction (and no fsync).
	if rec, found, err := d.records.get(ev.ID); err == nil && found && rec.State == stateDone && (rec.Reported || d.opts.Reporter == nil) {
		d.metrics.outcome(outcomeDuplicate)
		d.log.Debug("duplicate event", slog.String(logKeyID, ev.ID), slog.String(logKeyType, ev.Type))
		return nil
	}
	reg, known := d.handler(ev.Type)
	var reject string
	switch {
	case perr != nil:
		reject = perr.Error()
	case !known:
		reject = fmt.Sprintf("unknown event type %q", ev.Type)
	}
	fail := func(cur record) *Result {
		if reject != "" {
			r := Rejected(reject)
			return &r
		}
		if cur.Attempts > d.opts.MaxAttempts {
			detail := fmt.Sprintf("gave up after %d attempts", cur.Attempts-1)
			if cur.LastError != "" {
				detail += ": " + cur.LastError
			}
			r := Failed(detail)
			return &r
		}
		return nil
	}
	// A rejected or given-up event is recorded done right here, with its
	// report staged alongside when the Reporter can.
	var prev, cur record
	var found bool
	reportedAtBegin, err := d.writeReported(ev, func(stage stageFunc) (err error) {
		prev, found, cur, err = d.records.beginStaged(ev, fail, stage)
		return err
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if found && prev.State == stateDone {
		if prev.Reported || d.opts.Reporter == nil || prev.Result == nil {
			d.metrics.outcome(outcomeDuplicate)
			d.log.Debug("duplicate event", slog.String(logKeyID, ev.ID), slog.String(logKeyType, ev.Type))
			return nil
		}
		// Recorded done, never reported: the process died in between,
		// before the message was acknowledged.
		d.log.Info("reporting the result of an event handled before a restart",
			slog.String(logKeyID, ev.ID), slog.String(logKeyType, ev.Type))
		d.report(ctx, ev, *prev.Result)
		return nil
	}
	if cur.State == stateDone { // rejected, or given up
		d.finished(ctx, ev, *cur.Result, reportedAtBegin)
		return nil
	}
	if found {
		d.log.Info("handling an event again: an earlier attempt did not finish",
			slog.String(logKeyID, ev.ID), slog.String(logKeyType, ev.Type), slog.Int(logKeyAttempt, cur.Attempts),
			slog.String(logKeyError, prev.LastError))
	}

	res, err := d.run(ctx, reg, ev)
	if err != nil {
		if pe := (*permanentError)(nil); !errors.As(err, &pe) {
			d.metrics.outcome(outcomeRetry)
			if rerr := d.records.retryLater(ev, err); rerr != nil {
				d.log.Warn("cannot note handler error", slog.String(logKeyID, ev.ID), slog.Any(logKeyError, rerr))
			}
			return fmt.Errorf("events: event %s (%s), attempt %d: %w", ev.ID, ev.Type, cur.Attempts, err)
		}
		res = Failed(err.Error())
	}
	res = checkResult(res)
	reported, err := d.writeReported(ev, func(stage stageFunc) error {
		_, err := d.records.finishStaged(ev, res, stage)
		return err
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	d.finished(ctx, ev, res, reported)
	return nil
}

// writeReported runs write, a records step that may record a result, once.
// When the Reporter is a TxReporter, write gets a stage function that
// stages the report in write's transaction, and reported says whether a
// result was recorded with its report staged. If staging fails, write's
// transaction is rolled back and write runs again without staging, so that
// the event is not failed for it: the caller then reports through Report.
func (d *Dispatcher) writeReported(ev Event, write func(stage stageFunc) error) (reported bool, err error) {
	txr, ok := d.opts.Reporter.(TxReporter)
	if !ok {
		return false, write(nil)
	}
	var stageErr error
	err = func() error {
		var done func(bool)
		committed := false
		// done must run as soon as Update has returned, before the store is
		// written again (the reporter may hold a lock until then), and also
		// if Update panics; hence this closure and its defer.
		defer func() {
			if done != nil {
				done(committed)
			}
		}()
		err := write(func(tx *store.Tx, res Result) error {
			var err error
			done, err = txr.ReportTx(tx, ev, res)
			if err != nil {
				stageErr = err
				return err
			}
			reported = true
			return nil
		})
		committed = err == nil
		return err
	}()
	if stageErr == nil {
		return reported && err == nil, err
	}
	d.log.Warn("cannot queue the event result with its record; recording it, then reporting it on its own",
		slog.String(logKeyID, ev.ID), slog.Any(logKeyError, stageErr))
	return false, write(nil)
}

// run calls the handler with its timeout, turning a panic into an error.
func (d *Dispatcher) run(ctx context.Context, reg registration, ev Event) (res Result, err error) {
	ctx, cancel := context.WithTimeout(ctx, reg.timeout)
	defer cancel()
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
		d.metrics.handlerSeconds.Observe(time.Since(start).Seconds())
	}()
	return reg.h(ctx, ev)
}

// checkResult makes a handler's result valid: a known status and a JSON
// body (a body that is not JSON is kept as a JSON string).
func checkResult(res Result) Result {
	switch res.Status {
	case StatusDone, StatusFailed, StatusRejected:
	default:
		return Failed(fmt.Sprintf("handler returned unknown status %q", res.Status))
	}
	return sanitize(res)
}

// finished counts, logs and reports a result that has been recorded;
// reported means its report was already staged with the record.
func (d *Dispatcher) finished(ctx context.Context, ev Event, res Result, reported bool) {
	d.metrics.outcome(res.Status)
	level := slog.LevelInfo
	if res.Status != StatusDone {
		level = slog.LevelWarn
	}
	d.log.Log(ctx, level, "event handled",
		slog.String(logKeyID, ev.ID), slog.String(logKeyType, ev.Type),
		slog.String(logKeyStatus, res.Status), slog.String(logKeyDetail, res.Detail))
	if !reported {
		d.report(ctx, ev, res)
	}
}

// report hands res to the Reporter and notes that it did. A failure is
// logged, not returned: the outbox behind the Reporter is durable, so it
// fails only when the store does.
func (d *Dispatcher) report(ctx context.Context, ev Event, res Result) {
	if d.opts.Reporter == nil {
		return
	}
	if err := d.opts.Reporter.Report(ctx, ev, res); err != nil {
		d.metrics.reportFailures.Inc()
		d.log.Warn("cannot report event result", slog.String(logKeyID, ev.ID), slog.Any(logKeyError, err))
		return
	}
	if err := d.records.markReported(ev.ID); err != nil {
		d.log.Warn("cannot note event result reported", slog.String(logKeyID, ev.ID), slog.Any(logKeyError, err))
	}
}

// head returns the start of a payload for a log line.
func head(p []byte) string {
	if len(p) <= logPayloadHead {
		return string(p)
	}
	return string(p[:logPayloadHead]) + "…"
}
