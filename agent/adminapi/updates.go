package adminapi

import (
	"context"
	"errors"
	"io"

	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/module"
)

// Updates is the update operations that work with or without an agent.
// (Asking the server now needs the agent's poller: adminclient's
// CheckUpdate.)
type Updates interface {
	UpdateStatus(ctx context.Context) (*UpdateStatus, error)
	// InstallUpdate streams an Artifact into the update machine. Without
	// commit the install waits for CommitUpdate or RollbackUpdate.
	InstallUpdate(ctx context.Context, artifact io.Reader, commit bool) (*UpdateResult, error)
	CommitUpdate(ctx context.Context) (*UpdateResult, error)
	RollbackUpdate(ctx context.Context) (*UpdateResult, error)
}

// LocalUpdates performs the Updates operations on an update machine in
// this process: the agent's routes call it, and so does the CLI when no
// agent runs.
type LocalUpdates struct {
	Machine *deploy.Machine
	// Poller is the update channel's poller; nil when the channel is off.
	Poller *deploy.Poller
	// ServerURL is the update server, reported with the poller.
	ServerURL string
	// Lifetime, when set, bounds the operations instead of the caller's
	// context: the agent's routes run an install under the agent's
	// lifetime, so that a client that goes away only cuts the Artifact
	// stream (which fails the download cleanly) instead of leaving a
	// half-done step behind.
	Lifetime context.Context
	// Restarts says that this process restarts to go on with an update
	// (a new agent binary to verify, or the old one back): such an
	// update then ends with OutcomeRestarting, not an error.
	Restarts bool
}

var _ Updates = (*LocalUpdates)(nil)

// ErrNoUpdates is the answer when no update machine is configured.
var ErrNoUpdates = errors.New("updates are not configured: set device.device_type in the configuration")

func (u *LocalUpdates) UpdateStatus(context.Context) (*UpdateStatus, error) {
	if u.Machine == nil {
		return nil, Conflict(ErrNoUpdates)
	}
	dev, err := u.Machine.Device()
	if err != nil {
		return nil, err
	}
	st := &UpdateStatus{ArtifactName: dev.ArtifactName, ArtifactGroup: dev.ArtifactGroup, Provides: dev.Provides}
	rec, err := u.Machine.InFlight()
	if err != nil {
		return nil, err
	}
	if rec != nil {
		st.InFlight = &InFlightUpdate{
			DeploymentID: rec.DeploymentID, ArtifactName: rec.ArtifactName, Step: string(rec.Step),
			Outcome: string(rec.Outcome), Reason: rec.Reason, Started: rec.Started,
		}
	}
	if u.Poller != nil {
		st.Channel, st.ServerURL = true, u.ServerURL
		st.Poller = pollerStatus(u.Poller.Status())
	}
	return st, nil
}

func (u *LocalUpdates) InstallUpdate(ctx context.Context, artifact io.Reader, commit bool) (*UpdateResult, error) {
	return u.run(ctx, func(ctx context.Context) (deploy.Result, error) {
		return u.Machine.Install(ctx, artifact, deploy.Job{Standalone: !commit})
	})
}

func (u *LocalUpdates) CommitUpdate(ctx context.Context) (*UpdateResult, error) {
	return u.run(ctx, func(ctx context.Context) (deploy.Result, error) { return u.Machine.Commit(ctx) })
}

func (u *LocalUpdates) RollbackUpdate(ctx context.Context) (*UpdateResult, error) {
	return u.run(ctx, func(ctx context.Context) (deploy.Result, error) { return u.Machine.Rollback(ctx) })
}

func (u *LocalUpdates) run(ctx context.Context, op func(context.Context) (deploy.Result, error)) (*UpdateResult, error) {
	if u.Machine == nil {
		return nil, Conflict(ErrNoUpdates)
	}
	if u.Lifetime != nil {
		ctx = u.Lifetime
	}
	res, err := op(ctx)
	switch {
	case u.Restarts && errors.Is(err, module.ErrRestartAgent):
		r := updateResult(res)
		r.Outcome = OutcomeRestarting
		return r, nil
	case errors.Is(err, deploy.ErrBusy), errors.Is(err, deploy.ErrNothingToCommit):
		return nil, Conflict(err)
	case err != nil:
		return nil, err
	}
	return updateResult(res), nil
}

func updateResult(r deploy.Result) *UpdateResult {
	return &UpdateResult{ArtifactName: r.ArtifactName, Outcome: string(r.Outcome), Reason: r.Reason, RolledBack: r.RolledBack, Inconsistent: r.Inconsistent}
}

func pollerStatus(p deploy.PollerStatus) *PollerStatus {
	out := &PollerStatus{
		LastCheck: p.LastCheck, LastCheckErr: p.LastCheckErr, NextCheck: p.NextCheck,
		LastInventory: p.LastInventory, Deploying: p.Deploying, PollInterval: p.PollInterval.String(),
	}
	if p.LastResult != nil {
		out.LastResult = updateResult(*p.LastResult)
	}
	return out
}
