package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/module"
)

// Mender's production defaults (UpdatePollIntervalSeconds,
// InventoryPollIntervalSeconds, RetryPollIntervalSeconds).
const (
	DefaultPollInterval      = 30 * time.Minute
	DefaultInventoryInterval = 8 * time.Hour
	DefaultRetryInterval     = 5 * time.Minute
)

// PollerOptions configure a Poller.
type PollerOptions struct {
	Client  *updater.Client
	Machine *Machine
	// PollInterval, InventoryInterval and RetryInterval default to
	// Mender's values. Waits are spread by ±20% so that a fleet does not
	// poll in step. After failed calls the Poller waits with full jitter
	// under caps that double from a minute to RetryInterval (never more
	// than PollInterval), and after a 429 at least what it asked for:
	// see schedule.
	PollInterval      time.Duration
	InventoryInterval time.Duration
	RetryInterval     time.Duration
	// Inventory returns the attributes sent besides artifact_name,
	// device_type and the agent version. Optional.
	Inventory func() []updater.Attribute
	// Download configures the artifact download (resume, rate limit).
	Download updater.DownloadOptions
	// Metrics, when not nil, records checks and deployments.
	Metrics *Metrics
	Logger  *slog.Logger
	// Ready, when set, is called at the start of every Run: the owner
	// wires it to its supervisor's readiness. Optional.
	Ready func()
}

// Poller is the update channel's loop: it resumes an interrupted
// deployment, then sends inventory and asks the server for deployments at
// their intervals, or at once when CheckNow is called, and runs each
// deployment through the Machine. It is a supervisor component.
type Poller struct {
	opts  PollerOptions
	log   *slog.Logger
	check chan struct{}

	mu     sync.Mutex
	status PollerStatus
	ended  int           // deployments run to an end
	poll   time.Duration // set at run time; zero: opts.PollInterval
}

// PollerStatus is what `edgefort status` shows of the update channel.
type PollerStatus struct {
	LastCheck    time.Time `json:"last_check,omitzero"`
	LastCheckErr string    `json:"last_check_error,omitempty"`
	NextCheck    time.Time `json:"next_check,omitzero"`
	// RetryAfterUntil is when the server's last 429 Retry-After ends;
	// zero once a check got through. A check asked for before then waits
	// for it.
	RetryAfterUntil time.Time `json:"retry_after_until,omitzero"`
	LastInventory   time.Time `json:"last_inventory,omitzero"`
	// LastResult is the outcome of the last deployment this process ran.
	LastResult *Result `json:"last_result,omitempty"`
	// Deploying names the Artifact being installed now.
	Deploying string `json:"deploying,omitempty"`
	// PollInterval is the interval in force.
	PollInterval time.Duration `json:"poll_interval"`
}

// NewPoller returns a Poller; Run starts it.
func NewPoller(opts PollerOptions) (*Poller, error) {
	if opts.Client == nil || opts.Machine == nil {
		return nil, errors.New("deploy: poller needs a Client and a Machine")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.InventoryInterval <= 0 {
		opts.InventoryInterval = DefaultInventoryInterval
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Poller{opts: opts, log: log.With("component", "updates"), check: make(chan struct{}, 1)}, nil
}

// SetPollInterval changes how often the server is asked, at run time (a
// setting the cloud may drive through the device shadow). It applies from
// the next check, which it makes happen now.
func (p *Poller) SetPollInterval(d time.Duration) error {
	if d < 5*time.Second || d > 7*24*time.Hour {
		return fmt.Errorf("poll interval %s is outside 5s to 168h", d)
	}
	p.mu.Lock()
	p.poll = d
	p.mu.Unlock()
	p.log.Info("poll interval changed", "poll_interval", d)
	p.CheckNow()
	return nil
}

func (p *Poller) pollInterval() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.poll > 0 {
		return p.poll
	}
	return p.opts.PollInterval
}

// CheckNow asks the running Poller to check for a deployment at once
// (edgefort update check, or an update.check event from the cloud), or as
// soon as the server's last Retry-After has ended (Status's
// RetryAfterUntil). It never blocks; checks asked for while one runs fold
// into one.
func (p *Poller) CheckNow() {
	select {
	case p.check <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the loop's state.
func (p *Poller) Status() PollerStatus {
	iv := p.pollInterval()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.status
	st.PollInterval = iv
	return st
}

// Run runs the loop until ctx ends. It returns module.ErrRestartAgent when
// an installer needs the agent to restart.
func (p *Poller) Run(ctx context.Context) error {
	// Ready first: the self-update's verify step waits for every
	// component, this one included, to be ready.
	if p.opts.Ready != nil {
		p.opts.Ready()
	}
	if res, err := p.opts.Machine.Resume(ctx); err != nil {
		if ctx.Err() != nil && !errors.Is(err, module.ErrRestartAgent) {
			return nil // shutting down; the record waits for the next start
		}
		return fmt.Errorf("resume the interrupted deployment: %w", err)
	} else if res.Outcome != "" {
		p.setResult(res)
	}

	checks := newSchedule(p.opts.RetryInterval, nil)
	inventory := newSchedule(p.opts.RetryInterval, nil)
	nextInventory := time.Now()
	nextCheck := time.Now()
	for {
		now := time.Now()
		if !now.Before(nextInventory) {
			if err := p.sendInventory(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d := inventory.failed(now, err, p.pollInterval())
				p.log.Warn("inventory not sent", "err", err, "retry_in", d)
				nextInventory = now.Add(d)
			} else {
				nextInventory = now.Add(inventory.ok(p.opts.InventoryInterval))
			}
		}
		if !now.Before(nextCheck) {
			deployed := p.deployments()
			next, err := p.checkOnce(ctx, checks)
			if err != nil {
				return err
			}
			nextCheck = next
			if p.deployments() != deployed {
				// The server should see the new artifact_name soon, not
				// at the next inventory interval.
				nextInventory = time.Now()
			}
		}
		t := time.NewTimer(time.Until(earliest(nextCheck, nextInventory)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-p.check:
			t.Stop()
			now := time.Now()
			nextCheck = checks.earliest(now)
			if nextCheck.After(now) {
				p.log.Info("check asked for; the server's Retry-After holds it", "check_at", nextCheck)
				p.mu.Lock()
				p.status.NextCheck = nextCheck
				p.mu.Unlock()
			}
		case <-t.C:
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (p *Poller) deviceState() (updater.DeviceState, error) {
	dev, err := p.opts.Machine.Device()
	if err != nil {
		return updater.DeviceState{}, err
	}
	return updater.DeviceState{ArtifactName: dev.ArtifactName, DeviceType: p.opts.Machine.opts.DeviceType, Provides: dev.extraProvides()}, nil
}

func (p *Poller) sendInventory(ctx context.Context) error {
	st, err := p.deviceState()
	if err != nil {
		return err
	}
	var attrs []updater.Attribute
	if p.opts.Inventory != nil {
		attrs = p.opts.Inventory()
	}
	if err := p.opts.Client.SendInventory(ctx, st, attrs); err != nil {
		return err
	}
	p.mu.Lock()
	p.status.LastInventory = time.Now()
	p.mu.Unlock()
	p.log.Debug("inventory sent", "artifact", st.ArtifactName)
	return nil
}

// checkOnce asks for a deployment and runs it. It returns when to check
// next, timed by sch, or an error that ends Run (ctx ended is not one; a
// needed restart or a store failure is). The check's result and the next
// check are published in Status together, so that a reader never sees the
// one without the other.
func (p *Poller) checkOnce(ctx context.Context, sch *schedule) (time.Time, error) {
	wait, result, err := p.check1(ctx)
	now := time.Now()
	if err != nil {
		result = "error"
	}
	p.opts.Metrics.check(result, now)
	var stop stopError
	var end error
	switch {
	case ctx.Err() != nil:
	case errors.As(err, &stop):
		end = stop.err
	case err != nil:
		wait = sch.failed(now, err, p.pollInterval())
		p.log.Warn("update check failed", "err", err, "retry_in", wait)
	default:
		wait = sch.ok(wait)
	}
	next := now.Add(wait)
	p.mu.Lock()
	p.status.LastCheck = now
	p.status.LastCheckErr = ""
	if err != nil {
		p.status.LastCheckErr = err.Error()
	}
	p.status.NextCheck = next
	p.status.RetryAfterUntil = sch.notBefore
	p.mu.Unlock()
	return next, end
}

// stopError wraps errors that end the loop.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// check1 returns the wait before the next check and the check's result
// for the metrics (none or deployment).
func (p *Poller) check1(ctx context.Context) (time.Duration, string, error) {
	if rec, err := p.opts.Machine.InFlight(); err != nil {
		return 0, "", stopError{err}
	} else if rec != nil && rec.Step == StepAwaitCommit {
		p.log.Info("a standalone install waits for `edgefort update commit` or `rollback`; not checking for deployments", "artifact", rec.ArtifactName)
		return p.pollInterval(), "none", nil
	} else if rec != nil {
		// A local install is under way (edgefort update install).
		p.log.Info("an update is in progress; checking for deployments later", "artifact", rec.ArtifactName, "step", rec.Step)
		return p.opts.RetryInterval, "none", nil
	}
	st, err := p.deviceState()
	if err != nil {
		return 0, "", stopError{err}
	}
	d, err := p.opts.Client.NextDeployment(ctx, st)
	if err != nil {
		return 0, "", err
	}
	if d == nil {
		p.log.Debug("no deployment")
		return p.pollInterval(), "none", nil
	}
	wait, err := p.runDeployment(ctx, d, st)
	return wait, "deployment", err
}

func (p *Poller) runDeployment(ctx context.Context, d *updater.Deployment, st updater.DeviceState) (time.Duration, error) {
	log := p.log.With("deployment", d.ID, "artifact", d.ArtifactName)
	if d.ArtifactName == st.ArtifactName {
		log.Info("artifact already installed")
		if err := p.opts.Client.ReportStatus(ctx, d.ID, updater.StatusAlreadyInstalled, ""); err != nil {
			return 0, err
		}
		p.setResult(Result{ArtifactName: d.ArtifactName, Outcome: OutcomeAlreadyInstalled})
		return p.pollInterval(), nil
	}
	log.Info("deployment received; downloading")
	p.mu.Lock()
	p.status.Deploying = d.ArtifactName
	p.mu.Unlock()
	p.opts.Metrics.setDeploying(true)
	defer func() {
		p.opts.Metrics.setDeploying(false)
		p.mu.Lock()
		p.status.Deploying = ""
		p.mu.Unlock()
	}()
	var src io.Reader
	body, _, err := p.opts.Client.Download(ctx, d.URI, p.opts.Download)
	if err != nil {
		// Through the machine all the same, so that the failure is
		// reported with its log like any other.
		src = errReader{err}
	} else {
		defer body.Close()
		src = body
	}
	res, err := p.opts.Machine.Install(ctx, src, Job{DeploymentID: d.ID, ArtifactName: d.ArtifactName})
	switch {
	case errors.Is(err, ErrBusy):
		// A local install started meanwhile; the server offers the
		// deployment again at the next check.
		p.log.Info("an update is in progress; the deployment waits", "err", err)
		return p.opts.RetryInterval, nil
	case err != nil && ctx.Err() != nil && !errors.Is(err, module.ErrRestartAgent):
		return 0, nil
	case err != nil:
		return 0, stopError{err}
	}
	p.setResult(res)
	// Look again soon: the server may have queued another deployment.
	return time.Second, nil
}

// deployments counts the deployments this Poller ran to an end.
func (p *Poller) deployments() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

func (p *Poller) setResult(res Result) {
	p.opts.Metrics.deployment(res.Outcome)
	p.mu.Lock()
	p.ended++
	p.status.LastResult = &res
	p.mu.Unlock()
	p.log.Info("deployment ended", "artifact", res.ArtifactName, "outcome", res.Outcome, "reason", res.Reason)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
