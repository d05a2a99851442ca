package deploy

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/updater"
)

// status sends an intermediate status of a server deployment. It returns
// true when the server aborted the deployment (409), after recording it.
// Other failures are logged and do not stop the update: the abort check
// before the commit is the one that must get through (reportWithRetry).
func (m *Machine) status(ctx context.Context, rec *Record, status string) (aborted bool) {
	if rec.DeploymentID == "" || m.opts.Reporter == nil {
		return false
	}
	err := m.opts.Reporter.ReportStatus(ctx, rec.DeploymentID, status, "")
	switch {
	case err == nil:
		return false
	case errors.Is(err, updater.ErrAborted):
		rec.Outcome = OutcomeAborted
		rec.fail(errAborted.Error())
		m.note(rec, slog.LevelWarn, "deployment aborted on the server", "status", status)
		return true
	}
	m.note(rec, slog.LevelWarn, "status report failed", "status", status, "err", err)
	return false
}

// maxReportRetry caps the doubling wait between status report attempts.
const maxReportRetry = 5 * time.Minute

// reportWithRetry sends status, retrying with backoff. It returns
// updater.ErrAborted on a 409, ctx's error when ctx ends, or the last error
// once the attempts are used up.
func (m *Machine) reportWithRetry(ctx context.Context, rec *Record, status string) error {
	// No jitter: one node's final report, not a fleet's reconnect.
	bo := backoff.Backoff{Policy: backoff.Policy{Initial: m.opts.ReportRetry, Max: max(m.opts.ReportRetry, maxReportRetry), Floor: 1}}
	var err error
	for attempt := 1; ; attempt++ {
		err = m.opts.Reporter.ReportStatus(ctx, rec.DeploymentID, status, "")
		if err == nil || errors.Is(err, updater.ErrAborted) || ctx.Err() != nil {
			return err
		}
		if attempt >= m.opts.ReportAttempts {
			return err
		}
		delay := bo.Next()
		m.note(rec, slog.LevelWarn, "status report failed; retrying", "status", status, "attempt", attempt, "retry_in", delay, "err", err)
		if backoff.Sleep(ctx, delay) != nil {
			return ctx.Err()
		}
	}
}

// report sends the final status, and on failure the deployment log first,
// as Mender does. Once the attempts are used up the report is dropped, as
// in Mender: the server sees the deployment again at the next poll.
func (m *Machine) report(ctx context.Context, rec *Record) (Step, error) {
	if rec.DeploymentID == "" || m.opts.Reporter == nil || rec.Outcome == OutcomeAborted {
		return stepDone, nil
	}
	status := updater.StatusSuccess
	if rec.Outcome != OutcomeSuccess {
		status = updater.StatusFailure
		if rec.Reason != "" {
			rec.Log = append(rec.Log, updater.LogEntry{Timestamp: m.opts.Now().UTC(), Level: "error", Message: "deployment failed: " + rec.Reason})
		}
		if err := m.opts.Reporter.UploadLog(ctx, rec.DeploymentID, rec.Log); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			m.log.Warn("deployment log upload failed", "deployment", rec.DeploymentID, "err", err)
		}
	}
	err := m.reportWithRetry(ctx, rec, status)
	switch {
	case err == nil:
		m.log.Info("deployment status reported", "deployment", rec.DeploymentID, "status", status)
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, updater.ErrAborted):
		m.log.Warn("the server had aborted the deployment", "deployment", rec.DeploymentID)
	default:
		m.log.Error("giving up reporting the deployment status", "deployment", rec.DeploymentID, "status", status, "err", err)
	}
	return stepDone, nil
}
