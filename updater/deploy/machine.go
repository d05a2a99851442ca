package deploy

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/scripts"
)

// ErrBusy is returned when an update is asked for while another is in
// flight.
var ErrBusy = errors.New("an update is already in progress")

// ErrNothingToCommit is returned by Commit and Rollback when no standalone
// install waits for them.
var ErrNothingToCommit = errors.New("no installed update is waiting for commit or rollback")

// Reporter sends a deployment's statuses and log to the server. The
// updater.Client is one; a standalone install has none.
type Reporter interface {
	ReportStatus(ctx context.Context, id, status, substate string) error
	UploadLog(ctx context.Context, id string, entries []updater.LogEntry) error
}

// Options configure a Machine.
type Options struct {
	// Store holds the record of the deployment in flight and the device's
	// provides. Required.
	Store *store.DB
	// DeviceType is this node's device type; Artifacts must list it.
	// Required.
	DeviceType string
	// WorkDir holds the payload trees (WorkDir/payloads/NNNN/tree).
	// Required.
	WorkDir string
	// Installers finds the installer of an update type: a built-in or an
	// update module. Required.
	Installers func(typ string) (module.Installer, error)
	// Scripts runs state scripts; nil runs none.
	Scripts *scripts.Runner
	// Keys verify Artifact signatures; when set, unsigned Artifacts are
	// refused.
	Keys []crypto.PublicKey
	// Reporter receives statuses and logs of server deployments.
	Reporter Reporter
	// HostReboot reboots the machine, for modules that answer
	// NeedsArtifactReboot with Automatic. Nil refuses such Artifacts at
	// install time (with a rollback).
	HostReboot func(ctx context.Context) error
	// ReportAttempts and ReportRetry bound the retries of the final status
	// report. Defaults 4 and 5s (doubling, capped at 5m).
	ReportAttempts int
	ReportRetry    time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// Result says how Install, Resume, Commit or Rollback ended.
type Result struct {
	ArtifactName string
	Outcome      Outcome
	// Reason is why it failed, empty on success.
	Reason string
	// RolledBack: the Artifact was installed and then rolled back; the
	// device runs what it ran before.
	RolledBack bool `json:",omitempty"`
	// Inconsistent: a rollback failed or was impossible; the device
	// reports <name>_INCONSISTENT until a later Artifact installs.
	Inconsistent bool `json:",omitempty"`
}

// Machine runs one update at a time. Its methods may be called from
// several goroutines; they serialise.
type Machine struct {
	opts Options
	log  *slog.Logger

	mu sync.Mutex // one update at a time
}

// New checks opts and returns a Machine.
func New(opts Options) (*Machine, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("deploy: Store is required")
	case opts.DeviceType == "":
		return nil, errors.New("deploy: DeviceType is required")
	case opts.WorkDir == "":
		return nil, errors.New("deploy: WorkDir is required")
	case opts.Installers == nil:
		return nil, errors.New("deploy: Installers is required")
	}
	if opts.ReportAttempts <= 0 {
		opts.ReportAttempts = 4
	}
	if opts.ReportRetry <= 0 {
		opts.ReportRetry = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Machine{opts: opts, log: log.With("component", "updates")}, nil
}

// Device returns what the node runs now.
func (m *Machine) Device() (Device, error) { return loadDevice(m.opts.Store) }

// InFlight returns the deployment in flight, or nil.
func (m *Machine) InFlight() (*Record, error) { return loadRecord(m.opts.Store) }

// Job describes what to install.
type Job struct {
	// DeploymentID is the server's deployment; empty for a standalone
	// install.
	DeploymentID string
	// ArtifactName is the name the server announced; the Artifact's header
	// must carry the same. Empty: not checked.
	ArtifactName string
	// Standalone stops after ArtifactInstall and waits for Commit or
	// Rollback, as `mender install` does; like it, an Artifact with a
	// payload that does not support rollback is committed at once.
	Standalone bool
}

// Install reads an Artifact from src and installs it. It returns when the
// deployment has ended (success, failure, aborted), or when a standalone
// install waits for commit. It returns an error, with the record kept for
// Resume, only when the process must stop: ctx was cancelled, the store
// failed, or an installer asked for the agent to restart
// (module.ErrRestartAgent).
func (m *Machine) Install(ctx context.Context, src io.Reader, job Job) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec, err := loadRecord(m.opts.Store); err != nil {
		return Result{}, err
	} else if rec != nil {
		if rec.Step == StepAwaitCommit {
			return Result{}, fmt.Errorf("deploy: %w: %s is installed and waits for 'edgefort update commit' or 'rollback'", ErrBusy, rec.name())
		}
		return Result{}, fmt.Errorf("deploy: %w: %s at %s (the agent carries it on when it runs)", ErrBusy, rec.name(), rec.Step)
	}
	rec := &Record{
		DeploymentID: job.DeploymentID,
		ArtifactName: job.ArtifactName,
		Standalone:   job.Standalone,
		Step:         StepDownload,
		Started:      m.opts.Now().UTC(),
	}
	m.note(rec, slog.LevelInfo, "deployment started", "deployment", job.DeploymentID)
	if err := m.persist(rec); err != nil {
		return Result{}, err
	}
	next := m.download(ctx, rec, src, job)
	return m.drive(ctx, rec, next)
}

// drive persists next and runs steps until the deployment ends or the
// process must stop.
func (m *Machine) drive(ctx context.Context, rec *Record, next Step) (Result, error) {
	for {
		if err := ctx.Err(); err != nil {
			// Leave the record as persisted: the next start resumes it as
			// after a crash.
			return Result{ArtifactName: rec.ArtifactName}, err
		}
		if next == stepDone {
			if err := m.finish(rec); err != nil {
				return Result{}, err
			}
			return rec.result(), nil
		}
		rec.Step = next
		if rec.Writes >= maxWrites && !rec.Forced {
			rec.Forced = true
			next = m.loopGuard(rec)
			rec.Step = next
		}
		if next == stepDone {
			continue
		}
		if err := m.persist(rec); err != nil {
			return Result{}, err
		}
		if next == StepAwaitCommit {
			return rec.result(), nil
		}
		var err error
		next, err = m.step(ctx, rec)
		if err != nil {
			// ctx cancelled or a restart: the persisted step stands.
			return Result{ArtifactName: rec.ArtifactName}, err
		}
	}
}

// step runs rec.Step's action and returns the next step. An error means
// stop now without moving on.
func (m *Machine) step(ctx context.Context, rec *Record) (Step, error) {
	switch rec.Step {
	case StepInstall:
		return m.install(ctx, rec)
	case StepReboot:
		return m.reboot(ctx, rec)
	case StepVerifyReboot:
		return m.verifyReboot(ctx, rec)
	case StepCommit:
		return m.commit(ctx, rec)
	case StepAfterCommit:
		return m.afterCommit(ctx, rec)
	case StepRollback:
		return m.rollback(ctx, rec)
	case StepRollbackReboot:
		return m.rollbackReboot(ctx, rec)
	case StepRollbackVerifyReboot:
		return m.rollbackVerifyReboot(ctx, rec)
	case StepFailure:
		return m.failure(ctx, rec)
	case StepCleanup:
		return m.cleanup(ctx, rec)
	case StepReport:
		return m.report(ctx, rec)
	}
	return stepDone, fmt.Errorf("deploy: unknown step %q in the record", rec.Step)
}

// loopGuard picks where to go once the record was written too often.
//
// It fires once per deployment: the path it picks then runs to its end.
// After the commit the outcome stands (the new Artifact is in); before it,
// the deployment fails: rolled back if it can be, else marked
// inconsistent.
func (m *Machine) loopGuard(rec *Record) Step {
	m.note(rec, slog.LevelError, "too many state changes; forcing the deployment to end", "writes", rec.Writes, "step", rec.Step)
	const why = "the update looped through too many states (crash loop?)"
	switch rec.Step {
	case StepDownload:
		rec.fail(why)
		return StepCleanup
	case StepInstall, StepReboot, StepVerifyReboot, StepCommit:
		rec.fail(why)
		if rec.Installed && !rec.canRollback() {
			rec.Broken = true
			return StepFailure
		}
		return StepRollback
	case StepRollback, StepRollbackReboot, StepRollbackVerifyReboot:
		// The way back keeps failing: say so, and end.
		rec.fail(why)
		rec.Broken = true
		return StepFailure
	}
	// AfterCommit, Failure, Cleanup, Report: already on their way out.
	return rec.Step
}

// persist writes rec, counting the write.
func (m *Machine) persist(rec *Record) error {
	rec.Writes++
	if err := m.opts.Store.Bucket(bucketName).Put(recordKey, rec); err != nil {
		return fmt.Errorf("deploy: record step %s: %w", rec.Step, err)
	}
	return nil
}

// finish removes the record of an ended deployment.
func (m *Machine) finish(rec *Record) error {
	if err := m.opts.Store.Bucket(bucketName).Delete(recordKey); err != nil {
		return fmt.Errorf("deploy: clear the finished deployment: %w", err)
	}
	m.log.Info("deployment finished", "artifact", rec.ArtifactName, "deployment", rec.DeploymentID, "outcome", rec.Outcome, "reason", rec.Reason)
	return nil
}

// note logs and keeps the line for the deployment log.
func (m *Machine) note(rec *Record, level slog.Level, msg string, args ...any) {
	m.log.Log(context.Background(), level, msg, append([]any{"artifact", rec.ArtifactName}, args...)...)
	line := msg
	for i := 0; i+1 < len(args); i += 2 {
		line += fmt.Sprintf(" %v=%v", args[i], args[i+1])
	}
	if len(rec.Log) >= maxLogEntries {
		rec.Log = append(rec.Log[:1], rec.Log[len(rec.Log)-maxLogEntries+2:]...)
	}
	rec.Log = append(rec.Log, updater.LogEntry{Timestamp: m.opts.Now().UTC(), Level: levelName(level), Message: line})
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

func (rec *Record) name() string {
	if rec.ArtifactName == "" {
		return "an artifact"
	}
	return rec.ArtifactName
}

// fail records the first failure reason.
func (rec *Record) fail(reason string) {
	if rec.Outcome != OutcomeAborted {
		rec.Outcome = OutcomeFailure
	}
	if rec.Reason == "" {
		rec.Reason = reason
	}
}

func (rec *Record) canRollback() bool {
	for _, p := range rec.Payloads {
		if !p.SupportsRollback {
			return false
		}
	}
	return true
}

func (rec *Record) result() Result {
	out := rec.Outcome
	if rec.Step == StepAwaitCommit {
		out = OutcomeInstalled
	}
	return Result{ArtifactName: rec.ArtifactName, Outcome: out, Reason: rec.Reason, RolledBack: rec.RolledBack && !rec.Broken, Inconsistent: rec.Broken}
}

// payloadsDir is where the payload trees live.
func (m *Machine) payloadsDir() string { return filepath.Join(m.opts.WorkDir, "payloads") }

func (m *Machine) treeFor(index int) string {
	return filepath.Join(m.payloadsDir(), fmt.Sprintf("%04d", index), "tree")
}

func (m *Machine) removeTrees() error {
	if err := os.RemoveAll(m.payloadsDir()); err != nil {
		return fmt.Errorf("deploy: remove payload trees: %w", err)
	}
	return nil
}
