package deploy

import (
	"context"
	"fmt"
	"log/slog"
)

// Resume carries on with the deployment a previous process left, from the
// step the Mender client would resume at:
//
//	Download                           → Cleanup, failure (its data is not trusted)
//	ArtifactReboot                     → ArtifactVerifyReboot
//	ArtifactInstall, VerifyReboot,
//	ArtifactCommit                     → ArtifactRollback, or ArtifactFailure
//	                                     and inconsistent if a payload cannot roll back
//	ArtifactRollbackReboot/VerifyReboot → ArtifactRollbackVerifyReboot
//	anything else                      → the same step again
//
// A standalone install waiting for commit stays as it is. Resume returns a
// zero Result when there is nothing to resume.
func (m *Machine) Resume(ctx context.Context) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, err := loadRecord(m.opts.Store)
	if err != nil || rec == nil {
		return Result{}, err
	}
	if rec.Step == StepAwaitCommit {
		return rec.result(), nil
	}
	next := resumeStep(rec)
	m.note(rec, slog.LevelWarn, "resuming an interrupted deployment", "step", rec.Step, "resume_at", next, "deployment", rec.DeploymentID)
	if rec.Step == StepInstall && next == StepRollback {
		// The cut may have come after ArtifactInstall changed something
		// but before the NeedsArtifactReboot answers were recorded: ask
		// again, or a change that needs a reboot to undo (a rootfs image
		// booted on trial) would be rolled back without one.
		for i, ps := range rec.Payloads {
			reboot, err := m.queryReboot(ctx, ps)
			if err != nil {
				if mustStop(ctx, err) {
					return Result{ArtifactName: rec.ArtifactName}, err
				}
				m.note(rec, slog.LevelWarn, "NeedsArtifactReboot query failed", "payload", ps.Index, "err", err)
				continue
			}
			rec.Payloads[i].Reboot = reboot
		}
	}
	return m.drive(ctx, rec, next)
}

func resumeStep(rec *Record) Step {
	switch rec.Step {
	case StepDownload:
		rec.fail("interrupted during download")
		return StepCleanup
	case StepReboot:
		return StepVerifyReboot
	case StepInstall, StepVerifyReboot, StepCommit:
		rec.fail(fmt.Sprintf("interrupted during %s", rec.Step))
		if rec.canRollback() {
			return StepRollback
		}
		rec.Broken = true
		return StepFailure
	case StepRollbackReboot, StepRollbackVerifyReboot:
		return StepRollbackVerifyReboot
	}
	return rec.Step
}

// ReasonOperatorRollback is the Reason of a standalone install rolled back
// on request.
const ReasonOperatorRollback = "rolled back by the operator"

// Commit commits a standalone install waiting for it.
func (m *Machine) Commit(ctx context.Context) (Result, error) {
	return m.standalone(ctx, StepCommit)
}

// Rollback rolls back a standalone install waiting for commit. As with
// `mender rollback`, a rollback that succeeds runs ArtifactRollback and
// then Cleanup, not ArtifactFailure: nothing failed.
func (m *Machine) Rollback(ctx context.Context) (Result, error) {
	return m.standalone(ctx, StepRollback)
}

func (m *Machine) standalone(ctx context.Context, next Step) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, err := loadRecord(m.opts.Store)
	if err != nil {
		return Result{}, err
	}
	if rec == nil || rec.Step != StepAwaitCommit {
		if rec != nil {
			return Result{}, fmt.Errorf("deploy: %w (a deployment of %s is at %s)", ErrNothingToCommit, rec.name(), rec.Step)
		}
		return Result{}, fmt.Errorf("deploy: %w", ErrNothingToCommit)
	}
	switch {
	case next == StepRollback:
		rec.fail(ReasonOperatorRollback)
		rec.OperatorRollback = true
	case rec.needsReboot():
		// A payload that must reboot (the agent's own binary, say) is
		// verified after its reboot before it is committed.
		next = StepReboot
	}
	return m.drive(ctx, rec, next)
}
