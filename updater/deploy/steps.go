package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/scripts"
)

// Script states and actions, as named in state script file names.
const (
	enter = "Enter"
	leave = "Leave"
	onErr = "Error"
)

// mustStop reports whether err means the process stops now, leaving the
// persisted step for the next start: the context ended, or an installer
// asked for the agent to restart.
func mustStop(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, module.ErrRestartAgent)
}

// download reads the Artifact and stores its payloads through their
// installers. Nothing is active yet when it returns StepInstall.
func (m *Machine) download(ctx context.Context, rec *Record, src io.Reader, job Job) Step {
	if m.status(ctx, rec, updater.StatusDownloading) {
		return StepCleanup
	}
	if err := m.runScripts(ctx, rec, "Download", enter); err != nil {
		return m.downloadFailed(ctx, rec, err)
	}
	dev, err := loadDevice(m.opts.Store)
	if err != nil {
		return m.downloadFailed(ctx, rec, err)
	}
	// AllAugments lets the reader return the header of an augmented
	// Artifact whatever its payload types. That is safe here only because
	// the machine enforces Mender's rule itself below (checkAugment): every
	// augmented payload's update module must answer SupportsAugmentedArtifacts
	// and permit each augmented header field (PermittedAugmentedHeaders),
	// and all of that is checked before any installer's Download starts and
	// before rd.Payloads lets any payload data flow.
	rd := artifact.NewReader(src, artifact.Options{Keys: m.opts.Keys, AllAugments: true})
	h, err := rd.Header()
	if err != nil {
		return m.downloadFailed(ctx, rec, err)
	}
	if job.ArtifactName != "" && h.Name != job.ArtifactName {
		return m.downloadFailed(ctx, rec, fmt.Errorf("the server announced artifact %q but the artifact's header names %q", job.ArtifactName, h.Name))
	}
	rec.ArtifactName = h.Name
	if err := checkMetaData(h); err != nil {
		return m.downloadFailed(ctx, rec, err)
	}
	if err := artifact.CheckDepends(m.opts.DeviceType, dev.provides(), h); err != nil {
		return m.downloadFailed(ctx, rec, err)
	}
	// The clears rule sees the device's whole provides, artifact_group
	// included: as in Mender, the group stays when the new Artifact names
	// none and its clears_provides do not match artifact_group.
	rec.NewProvides = artifact.NewProvides(dev.provides(), h)
	rec.ArtifactGroup = rec.NewProvides[artifact.ProvidesGroup]
	delete(rec.NewProvides, artifact.ProvidesName)
	delete(rec.NewProvides, artifact.ProvidesGroup)

	installers := map[int]module.Installer{}
	for i, p := range h.Payloads {
		typ := p.EffectiveType()
		if typ == "" {
			continue // an empty (bootstrap) payload: nothing to install
		}
		inst, err := m.opts.Installers(typ)
		if err != nil {
			return m.downloadFailed(ctx, rec, fmt.Errorf("payload %d: %w", p.Index, err))
		}
		ps := PayloadState{Index: p.Index, Type: typ, Tree: m.treeFor(p.Index)}
		// Record the payload before its tree exists, so that a crash from
		// here on still runs the module's Cleanup.
		rec.Payloads = append(rec.Payloads, ps)
		if err := m.persist(rec); err != nil {
			return m.downloadFailed(ctx, rec, err)
		}
		info := module.TreeInfo{
			CurrentArtifactName:  dev.ArtifactName,
			CurrentArtifactGroup: dev.ArtifactGroup,
			DeviceType:           m.opts.DeviceType,
			Header:               h,
			Payload:              i,
		}
		if err := os.MkdirAll(filepath.Dir(ps.Tree), 0o700); err != nil {
			return m.downloadFailed(ctx, rec, err)
		}
		if err := module.PrepareTree(ps.Tree, info); err != nil {
			return m.downloadFailed(ctx, rec, err)
		}
		if p.Augment != nil {
			if err := checkAugment(ctx, inst, ps, &p); err != nil {
				return m.downloadFailed(ctx, rec, err)
			}
		}
		installers[p.Index] = inst
	}
	if m.opts.Scripts != nil {
		if err := m.opts.Scripts.Store(h.Scripts); err != nil {
			return m.downloadFailed(ctx, rec, err)
		}
	}
	m.note(rec, slog.LevelInfo, "artifact header verified", "signature", h.Signature.String(), "payloads", len(rec.Payloads))

	sink := &payloadSink{sessions: map[int]module.Download{}}
	defer sink.abort()
	for _, ps := range rec.Payloads {
		dl, err := installers[ps.Index].Download(ctx, ps.payload())
		if err != nil {
			return m.downloadFailed(ctx, rec, err)
		}
		sink.sessions[ps.Index] = dl
	}
	if err := rd.Payloads(sink); err != nil {
		return m.downloadFailed(ctx, rec, err)
	}
	for _, ps := range rec.Payloads {
		if err := sink.sessions[ps.Index].Finish(ctx); err != nil {
			return m.downloadFailed(ctx, rec, fmt.Errorf("payload %d (%s): %w", ps.Index, ps.Type, err))
		}
	}
	for i, ps := range rec.Payloads {
		ans, err := installers[ps.Index].Query(ctx, ps.payload(), module.QuerySupportsRollback)
		if err == nil {
			rec.Payloads[i].SupportsRollback, err = module.ParseSupportsRollback(ans)
		}
		if err != nil {
			return m.downloadFailed(ctx, rec, fmt.Errorf("payload %d (%s): %w", ps.Index, ps.Type, err))
		}
	}
	if err := m.runScripts(ctx, rec, "Download", leave); err != nil {
		return m.downloadFailed(ctx, rec, err)
	}
	m.note(rec, slog.LevelInfo, "artifact downloaded and verified")
	return StepInstall
}

// supportsAugmentedYes is the one answer to SupportsAugmentedArtifacts that
// means yes (after the trailing newline is trimmed).
const supportsAugmentedYes = "YesThisModuleSupportsAugmentedArtifacts"

// checkAugment applies Mender's rule for an augmented payload p, whose
// installer is inst and whose tree is prepared: the module must answer
// SupportsAugmentedArtifacts with exactly
// YesThisModuleSupportsAugmentedArtifacts; when the augment changes the
// payload type, the module of the new type must list the original type in
// ListSupportedOriginalTypes; and every header field the augment sets must
// be within the module's PermittedAugmentedHeaders answer
// (artifact.Augment.CheckPermitted). Any other answer, or a failing query,
// refuses the Artifact. The built-in installers answer "" to these
// queries, so they refuse augmented Artifacts.
func checkAugment(ctx context.Context, inst module.Installer, ps PayloadState, p *artifact.Payload) error {
	where := fmt.Sprintf("payload %d (%s)", ps.Index, ps.Type)
	ans, err := inst.Query(ctx, ps.payload(), module.QuerySupportsAugmentedArtifacts)
	if err != nil {
		return fmt.Errorf("%s: augmented artifact, but the update module does not support augmented artifacts: %s query failed: %w", where, module.QuerySupportsAugmentedArtifacts, err)
	}
	if ans != supportsAugmentedYes {
		return fmt.Errorf("%s: augmented artifact, but the update module does not support augmented artifacts (%s answered %q)", where, module.QuerySupportsAugmentedArtifacts, ans)
	}
	if typ := p.EffectiveType(); typ != p.Type {
		ans, err := inst.Query(ctx, ps.payload(), module.QueryListSupportedOriginalTypes)
		if err != nil {
			return fmt.Errorf("%s: augmented artifact changes the payload type from %q: %s query failed: %w", where, p.Type, module.QueryListSupportedOriginalTypes, err)
		}
		if !slices.Contains(answerLines(ans), p.Type) {
			return fmt.Errorf("%s: augmented artifact changes the payload type from %q, which the update module does not list in %s", where, p.Type, module.QueryListSupportedOriginalTypes)
		}
	}
	ans, err = inst.Query(ctx, ps.payload(), module.QueryPermittedAugmentedHeaders)
	if err != nil {
		return fmt.Errorf("%s: augmented artifact: %s query failed: %w", where, module.QueryPermittedAugmentedHeaders, err)
	}
	if err := p.Augment.CheckPermitted(ans); err != nil {
		return fmt.Errorf("%s: augmented artifact refused: %w", where, err)
	}
	return nil
}

// answerLines splits a query answer into its non-empty, trimmed lines.
func answerLines(ans string) []string {
	var lines []string
	for _, l := range strings.Split(ans, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// downloadFailed ends a failed download: Download_Error scripts, then
// Cleanup. No payload was installed, so there is nothing to roll back.
func (m *Machine) downloadFailed(ctx context.Context, rec *Record, err error) Step {
	rec.fail(err.Error())
	m.note(rec, slog.LevelError, "download failed", "err", err)
	m.runScripts(ctx, rec, "Download", onErr) //nolint:errcheck // Error scripts' failures are ignored
	return StepCleanup
}

// payloadSink hands each payload file to its payload's download session.
type payloadSink struct {
	sessions map[int]module.Download
}

func (s *payloadSink) Store(f *artifact.File, r io.Reader) error {
	dl, ok := s.sessions[f.Payload]
	if !ok {
		return fmt.Errorf("payload %d has no installer but carries %s", f.Payload, f.Path)
	}
	return dl.Store(f, r)
}

func (s *payloadSink) Verified(*artifact.File) error { return nil }

// abort kills download sessions that did not finish; it is harmless after
// Finish.
func (s *payloadSink) abort() {
	for _, dl := range s.sessions {
		dl.Abort()
	}
}

func (m *Machine) install(ctx context.Context, rec *Record) (Step, error) {
	if m.status(ctx, rec, updater.StatusInstalling) {
		return StepCleanup, nil // aborted before anything was installed
	}
	if err := m.runScripts(ctx, rec, "ArtifactInstall", enter); err != nil {
		return m.errorPath(ctx, rec, "ArtifactInstall", err)
	}
	rec.Installed = true
	if err := m.persist(rec); err != nil {
		return "", err
	}
	for _, ps := range rec.Payloads {
		if err := m.call(ctx, ps, module.StateArtifactInstall); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			return m.errorPath(ctx, rec, "ArtifactInstall", err)
		}
	}
	for i, ps := range rec.Payloads {
		reboot, err := m.queryReboot(ctx, ps)
		if err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			return m.errorPath(ctx, rec, "ArtifactInstall", err)
		}
		rec.Payloads[i].Reboot = reboot
	}
	if err := m.runScripts(ctx, rec, "ArtifactInstall", leave); err != nil {
		return m.errorPath(ctx, rec, "ArtifactInstall", err)
	}
	m.note(rec, slog.LevelInfo, "artifact installed")
	if rec.Standalone {
		if rec.canRollback() {
			return StepAwaitCommit, nil
		}
		// As `mender install`: what cannot be rolled back has no choice
		// to wait for, so it is committed now.
		m.note(rec, slog.LevelInfo, "a payload does not support rollback; committing now")
	}
	switch {
	case rec.needsReboot():
		return StepReboot, nil
	}
	return StepCommit, nil
}

func (m *Machine) queryReboot(ctx context.Context, ps PayloadState) (module.Reboot, error) {
	inst, err := m.opts.Installers(ps.Type)
	if err != nil {
		return module.RebootNo, err
	}
	ans, err := inst.Query(ctx, ps.payload(), module.QueryNeedsArtifactReboot)
	if err != nil {
		return module.RebootNo, err
	}
	return module.ParseNeedsReboot(ans)
}

func (rec *Record) needsReboot() bool {
	return slices.ContainsFunc(rec.Payloads, func(p PayloadState) bool { return p.Reboot != module.RebootNo })
}

// errorPath runs state's Error scripts and turns to the rollback, or to
// the failure step when some payload cannot roll back.
func (m *Machine) errorPath(ctx context.Context, rec *Record, state string, err error) (Step, error) {
	rec.fail(err.Error())
	m.note(rec, slog.LevelError, state+" failed", "err", err)
	m.runScripts(ctx, rec, state, onErr) //nolint:errcheck // Error scripts' failures are ignored
	if rec.canRollback() {
		return StepRollback, nil
	}
	m.note(rec, slog.LevelWarn, "a payload does not support rollback; the device may be left inconsistent")
	return StepFailure, nil
}

func (m *Machine) reboot(ctx context.Context, rec *Record) (Step, error) {
	if m.status(ctx, rec, updater.StatusRebooting) {
		return m.errorPath(ctx, rec, "ArtifactReboot", errAborted)
	}
	if err := m.runScripts(ctx, rec, "ArtifactReboot", enter); err != nil {
		return m.errorPath(ctx, rec, "ArtifactReboot", err)
	}
	return m.doReboot(ctx, rec, module.StateArtifactReboot, StepVerifyReboot, "ArtifactReboot")
}

// doReboot calls the reboot state on the payloads that reboot themselves,
// then reboots the host if a payload asked for Automatic.
func (m *Machine) doReboot(ctx context.Context, rec *Record, state string, next Step, scriptState string) (Step, error) {
	automatic := false
	for _, ps := range rec.Payloads {
		switch ps.Reboot {
		case module.RebootYes:
			m.note(rec, slog.LevelInfo, "rebooting payload", "payload", ps.Index, "type", ps.Type, "state", state)
			if err := m.call(ctx, ps, state); err != nil {
				if mustStop(ctx, err) {
					return "", err
				}
				if next == StepVerifyReboot {
					return m.errorPath(ctx, rec, scriptState, err)
				}
				rec.Broken = true
				rec.fail(err.Error())
				return StepFailure, nil
			}
		case module.RebootAutomatic:
			automatic = true
		}
	}
	if !automatic {
		return next, nil
	}
	if m.opts.HostReboot == nil {
		err := errors.New("a payload needs the host to reboot (NeedsArtifactReboot=Automatic) but no reboot command is configured")
		if next == StepVerifyReboot {
			return m.errorPath(ctx, rec, scriptState, err)
		}
		rec.Broken = true
		rec.fail(err.Error())
		return StepFailure, nil
	}
	m.note(rec, slog.LevelInfo, "rebooting the host")
	if err := m.opts.HostReboot(ctx); err != nil {
		if next == StepVerifyReboot {
			return m.errorPath(ctx, rec, scriptState, err)
		}
		rec.Broken = true
		rec.fail(err.Error())
		return StepFailure, nil
	}
	// The reboot is under way; the next boot resumes at the verify step.
	// If it never comes (an inhibitor, a command that lied), fail rather
	// than hold the machine forever.
	t := time.NewTimer(hostRebootWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
	}
	err := fmt.Errorf("the host did not reboot within %s of the reboot command", hostRebootWait)
	if next == StepVerifyReboot {
		return m.errorPath(ctx, rec, scriptState, err)
	}
	rec.Broken = true
	rec.fail(err.Error())
	return StepFailure, nil
}

// hostRebootWait is how long a reboot command has to take the host down.
var hostRebootWait = 10 * time.Minute

func (m *Machine) verifyReboot(ctx context.Context, rec *Record) (Step, error) {
	for _, ps := range rec.Payloads {
		if ps.Reboot == module.RebootNo {
			continue
		}
		if err := m.call(ctx, ps, module.StateArtifactVerifyReboot); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			return m.errorPath(ctx, rec, "ArtifactReboot", err)
		}
	}
	if err := m.runScripts(ctx, rec, "ArtifactReboot", leave); err != nil {
		return m.errorPath(ctx, rec, "ArtifactReboot", err)
	}
	m.note(rec, slog.LevelInfo, "reboot verified")
	return StepCommit, nil
}

var errAborted = errors.New("the deployment was aborted on the server")

func (m *Machine) commit(ctx context.Context, rec *Record) (Step, error) {
	// The last chance to learn of an abort: Mender sends installing again
	// right before the commit and rolls back on 409, or when the server
	// cannot be reached to ask.
	if rec.DeploymentID != "" && m.opts.Reporter != nil {
		if err := m.reportWithRetry(ctx, rec, updater.StatusInstalling); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			if errors.Is(err, updater.ErrAborted) {
				rec.Outcome = OutcomeAborted
				err = errAborted
			}
			return m.errorPath(ctx, rec, "ArtifactCommit", err)
		}
	}
	if err := m.runScripts(ctx, rec, "ArtifactCommit", enter); err != nil {
		return m.errorPath(ctx, rec, "ArtifactCommit", err)
	}
	if len(rec.Payloads) > 0 {
		if err := m.call(ctx, rec.Payloads[0], module.StateArtifactCommit); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			return m.errorPath(ctx, rec, "ArtifactCommit", err)
		}
	}
	// The point of no return: the new provides and the step after the
	// commit are written in one transaction.
	dev := Device{ArtifactName: rec.ArtifactName, ArtifactGroup: rec.ArtifactGroup, Provides: rec.NewProvides}
	rec.Step = StepAfterCommit
	rec.Writes++
	m.note(rec, slog.LevelInfo, "artifact committed")
	err := m.opts.Store.Update(func(tx *store.Tx) error {
		b := tx.Bucket(bucketName)
		if err := b.Put(deviceKey, dev); err != nil {
			return err
		}
		return b.Put(recordKey, rec)
	})
	if err != nil {
		return "", fmt.Errorf("deploy: record the commit: %w", err)
	}
	rec.Writes-- // drive counts the write of AfterCommit again
	return StepAfterCommit, nil
}

func (m *Machine) afterCommit(ctx context.Context, rec *Record) (Step, error) {
	for _, ps := range rec.Payloads[min(1, len(rec.Payloads)):] {
		if err := m.call(ctx, ps, module.StateArtifactCommit); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			// Payload 0 is committed: there is no way back.
			rec.Broken = true
			rec.fail(fmt.Sprintf("payload %d commit failed after the first payload committed: %v", ps.Index, err))
		}
	}
	if err := m.runScripts(ctx, rec, "ArtifactCommit", leave); err != nil {
		rec.Broken = true
		rec.fail(err.Error())
	}
	if rec.Broken {
		if err := m.markBroken(rec); err != nil {
			return "", err
		}
	}
	if rec.Outcome == "" {
		rec.Outcome = OutcomeSuccess
	}
	return StepCleanup, nil
}

func (m *Machine) rollback(ctx context.Context, rec *Record) (Step, error) {
	if rec.Outcome == "" {
		rec.fail("rolled back")
	}
	m.note(rec, slog.LevelWarn, "rolling back")
	m.runScripts(ctx, rec, "ArtifactRollback", enter) //nolint:errcheck // ignored, as in Mender
	for i := len(rec.Payloads) - 1; i >= 0; i-- {
		ps := rec.Payloads[i]
		if err := m.call(ctx, ps, module.StateArtifactRollback); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			m.note(rec, slog.LevelError, "rollback failed", "payload", ps.Index, "err", err)
			rec.Broken = true
		}
	}
	if rec.Broken {
		return StepFailure, nil
	}
	if rec.needsReboot() {
		return StepRollbackReboot, nil
	}
	m.runScripts(ctx, rec, "ArtifactRollback", leave) //nolint:errcheck // ignored, as in Mender
	return m.rolledBack(rec), nil
}

// rolledBack records a complete rollback and picks the step after it: a
// rollback after a failure goes on to ArtifactFailure, one the operator
// asked for to Cleanup, as the Mender client does (nothing failed, so
// there is no ArtifactFailure to run).
func (m *Machine) rolledBack(rec *Record) Step {
	m.note(rec, slog.LevelInfo, "rolled back")
	rec.RolledBack = true
	if rec.OperatorRollback {
		return StepCleanup
	}
	return StepFailure
}

func (m *Machine) rollbackReboot(ctx context.Context, rec *Record) (Step, error) {
	m.runScripts(ctx, rec, "ArtifactRollbackReboot", enter) //nolint:errcheck // ignored, as in Mender
	return m.doReboot(ctx, rec, module.StateArtifactRollbackReboot, StepRollbackVerifyReboot, "ArtifactRollbackReboot")
}

func (m *Machine) rollbackVerifyReboot(ctx context.Context, rec *Record) (Step, error) {
	for _, ps := range rec.Payloads {
		if ps.Reboot == module.RebootNo {
			continue
		}
		if err := m.call(ctx, ps, module.StateArtifactRollbackVerifyReboot); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			// Mender reboots again; the write guard bounds the loop.
			m.note(rec, slog.LevelError, "rollback reboot not verified; rebooting again", "payload", ps.Index, "err", err)
			return StepRollbackReboot, nil
		}
	}
	m.runScripts(ctx, rec, "ArtifactRollbackReboot", leave) //nolint:errcheck // ignored, as in Mender
	m.runScripts(ctx, rec, "ArtifactRollback", leave)       //nolint:errcheck // ignored, as in Mender
	return m.rolledBack(rec), nil
}

func (m *Machine) failure(ctx context.Context, rec *Record) (Step, error) {
	if rec.Outcome == "" || rec.Outcome == OutcomeSuccess {
		rec.fail("failed")
	}
	if rec.Broken {
		if err := m.markBroken(rec); err != nil {
			return "", err
		}
	}
	m.runScripts(ctx, rec, "ArtifactFailure", enter) //nolint:errcheck // ignored, as in Mender
	for _, ps := range rec.Payloads {
		if err := m.call(ctx, ps, module.StateArtifactFailure); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			m.note(rec, slog.LevelError, "ArtifactFailure failed", "payload", ps.Index, "err", err)
		}
	}
	m.runScripts(ctx, rec, "ArtifactFailure", leave) //nolint:errcheck // ignored, as in Mender
	return StepCleanup, nil
}

// markBroken makes the device report <name>_INCONSISTENT, as the Mender
// client does when it could not get back to a known state.
func (m *Machine) markBroken(rec *Record) error {
	m.note(rec, slog.LevelError, "the device is in an inconsistent state")
	err := m.opts.Store.Update(func(tx *store.Tx) error {
		b := tx.Bucket(bucketName)
		var dev Device
		if _, err := b.Get(deviceKey, &dev); err != nil {
			return err
		}
		dev.ArtifactName = rec.name() + inconsistentSuffix
		return b.Put(deviceKey, dev)
	})
	if err != nil {
		return fmt.Errorf("deploy: mark the device inconsistent: %w", err)
	}
	return nil
}

func (m *Machine) cleanup(ctx context.Context, rec *Record) (Step, error) {
	for _, ps := range rec.Payloads {
		if err := m.call(ctx, ps, module.StateCleanup); err != nil {
			if mustStop(ctx, err) {
				return "", err
			}
			m.note(rec, slog.LevelWarn, "Cleanup failed", "payload", ps.Index, "err", err)
		}
	}
	if err := m.removeTrees(); err != nil {
		m.note(rec, slog.LevelWarn, "cleanup", "err", err)
	}
	if m.opts.Scripts != nil {
		if err := m.opts.Scripts.Clear(); err != nil {
			m.note(rec, slog.LevelWarn, "cleanup", "err", err)
		}
	}
	if rec.Outcome == "" {
		rec.fail("ended without an outcome")
	}
	return StepReport, nil
}

// call runs one state of a payload's installer.
func (m *Machine) call(ctx context.Context, ps PayloadState, state string) error {
	inst, err := m.opts.Installers(ps.Type)
	if err != nil {
		return err
	}
	m.log.Debug("update module call", "type", ps.Type, "payload", ps.Index, "state", state)
	if err := inst.Call(ctx, ps.payload(), state); err != nil {
		return fmt.Errorf("payload %d (%s) %s: %w", ps.Index, ps.Type, state, err)
	}
	return nil
}

// runScripts runs the state scripts for state/action. Failures of scripts
// Mender ignores are logged and dropped.
func (m *Machine) runScripts(ctx context.Context, rec *Record, state, action string) error {
	if m.opts.Scripts == nil {
		return nil
	}
	err := m.opts.Scripts.Run(ctx, state, action)
	if err == nil {
		return nil
	}
	if scripts.Ignored(state, action) {
		m.note(rec, slog.LevelWarn, "state script failed (ignored)", "state", state+"_"+action, "err", err)
		return nil
	}
	return fmt.Errorf("state script %s_%s: %w", state, action, err)
}
