// Package selfupdate is the built-in installer for payloads of type
// "edgefort-agent": it replaces the agent's own binary.
//
// The steps, as the update state machine calls them:
//
//   - Download streams the single payload file to <dir>/.<name>.new next to
//     the binary (same directory, so the later rename is atomic), mode 0755,
//     synced, and records its SHA-256 in the payload's tree.
//   - ArtifactInstall runs "<new> version" as a preflight (it must exit 0 and
//     print "edgefort ..."), records the SHA-256 of the current binary, keeps
//     the current binary as <binary>.previous (a hard link, or a copy when
//     linking fails) and renames the new file over the binary.
//   - ArtifactReboot marks the binary's next start as a trial (trial.go)
//     and returns module.ErrRestartAgent: the agent re-executes its binary,
//     watched by a guard that needs nothing of the new binary, and the next
//     process resumes at ArtifactVerifyReboot. A new binary that exits,
//     crashes or hangs before it is ready is put back by the guard; the
//     restarted old agent's ArtifactVerifyReboot fails with the guard's
//     reason.
//   - ArtifactVerifyReboot checks that the binary on disk and the running
//     executable are the new file, then waits for Installer.Ready.
//   - ArtifactCommit removes <binary>.previous; ArtifactRollback renames it
//     back over the binary; ArtifactRollbackReboot restarts the agent again
//     unless the old binary is already the one running.
//
// Download and ArtifactInstall refuse a binary that a deb or rpm package
// owns (owner.go): there the package manager updates the agent.
//
// Every step can be re-run after a crash at any point and ends in the same
// place. The small state it keeps (the two hashes) lives in the payload's
// tree, which survives agent restarts until the update is cleaned up.
package selfupdate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/updater/module"
)

// Type is the payload type this package installs.
const Type = "edgefort-agent"

// Defaults and limits.
const (
	// DefaultHealthTimeout is used when Installer.HealthTimeout is zero.
	DefaultHealthTimeout = 60 * time.Second
	// preflightTimeout bounds "<new> version".
	preflightTimeout = 15 * time.Second
	// readyPoll is how long VerifyReboot waits before asking Ready again
	// after it returned an error early.
	readyPoll = time.Second
)

// Log keys.
const (
	logKeyBinary   = "binary"
	logKeyNew      = "new"
	logKeyPrevious = "previous"
	logKeyHash     = "sha256"
	logKeyNewHash  = "new_sha256"
	logKeyOldHash  = "old_sha256"
	logKeyTree     = "tree"
)

// Installer installs "edgefort-agent" payloads. Binary and Ready are
// required; the other fields have defaults. It keeps no state between calls
// besides the files it writes, so one value may serve every update.
type Installer struct {
	// Binary is the absolute path of the agent binary to replace. The agent
	// resolves os.Executable once at start. Required.
	Binary string
	// Ready returns nil once the running agent's components are all ready.
	// It must return when ctx ends. VerifyReboot calls it again after an
	// early error, until HealthTimeout has passed. Required for
	// ArtifactVerifyReboot.
	Ready func(ctx context.Context) error
	// HealthTimeout is how long the new version has, in
	// ArtifactVerifyReboot, to become ready. Zero means
	// DefaultHealthTimeout (60s).
	HealthTimeout time.Duration
	// Logger receives one info line per step; nil discards.
	Logger *slog.Logger

	// checkRunning reports whether the running executable is the file at
	// binary, whose content has SHA-256 want. Nil means
	// checkRunningExecutable; tests replace it.
	checkRunning func(binary string, want [32]byte) error
	// readyPoll overrides readyPoll when positive; for tests.
	readyPoll time.Duration
	// link is os.Link when nil; tests make it fail to reach the copy.
	link func(oldname, newname string) error
	// dpkgAdmin is dpkg's database directory, defaultDpkgAdmin when
	// empty; rpmCommand is rpm and leading arguments, rpm on PATH (when
	// a database exists) when empty. Tests point them at their own.
	dpkgAdmin  string
	rpmCommand []string
}

// config is an Installer with defaults applied and the paths it derives.
type config struct {
	Installer
	log      *slog.Logger
	newPath  string // <dir>/.<base>.new
	prevPath string // <binary>.previous
	prevTmp  string // <dir>/.<base>.previous.tmp, where .previous is built
}

// config applies the defaults and checks the fields every step needs.
func (i *Installer) config() (*config, error) {
	c := &config{Installer: *i}
	if c.Binary == "" {
		return nil, errors.New("selfupdate: no binary path configured")
	}
	if !filepath.IsAbs(c.Binary) {
		return nil, fmt.Errorf("selfupdate: binary path %q is not absolute", c.Binary)
	}
	c.Binary = filepath.Clean(c.Binary)
	if c.HealthTimeout < 0 {
		return nil, fmt.Errorf("selfupdate: negative health timeout %v", c.HealthTimeout)
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.checkRunning == nil {
		c.checkRunning = checkRunningExecutable
	}
	if c.link == nil {
		c.link = os.Link
	}
	if c.dpkgAdmin == "" {
		c.dpkgAdmin = defaultDpkgAdmin
	}
	if c.readyPoll <= 0 {
		c.readyPoll = readyPoll
	}
	c.log = c.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "selfupdate")
	dir, base := filepath.Split(c.Binary)
	c.newPath = filepath.Join(dir, "."+base+".new")
	c.prevPath = c.Binary + ".previous"
	c.prevTmp = filepath.Join(dir, "."+base+".previous.tmp")
	return c, nil
}

// Download starts storing the payload's single file next to Binary.
func (i *Installer) Download(ctx context.Context, p module.Payload) (module.Download, error) {
	c, err := i.config()
	if err != nil {
		return nil, err
	}
	if err := checkPayload(p); err != nil {
		return nil, err
	}
	if c.Ready == nil {
		return nil, errors.New("selfupdate: no readiness check configured")
	}
	if err := c.checkNotPackaged(ctx); err != nil {
		return nil, fmt.Errorf("selfupdate: Download: %w", err)
	}
	return c.download(p)
}

// Call runs one state of the update for payload p. Unknown states do
// nothing.
func (i *Installer) Call(ctx context.Context, p module.Payload, state string) error {
	c, err := i.config()
	if err != nil {
		return err
	}
	if err := checkPayload(p); err != nil {
		return err
	}
	switch state {
	case module.StateArtifactInstall:
		err = c.install(ctx, p)
	case module.StateArtifactReboot:
		if err := c.writeTrial(p.Tree); err != nil {
			return fmt.Errorf("selfupdate: %s: %w", state, err)
		}
		c.log.Info("restarting the agent to run the new binary", logKeyBinary, c.Binary)
		return module.ErrRestartAgent
	case module.StateArtifactVerifyReboot:
		err = c.verifyReboot(ctx, p)
	case module.StateArtifactCommit:
		err = c.commit()
	case module.StateArtifactRollback:
		err = c.rollback(p)
	case module.StateArtifactRollbackReboot:
		return c.rollbackReboot(p)
	case module.StateArtifactRollbackVerifyReboot:
		err = c.rollbackVerifyReboot(p)
	case module.StateCleanup:
		err = c.cleanup()
	default: // ArtifactFailure and states this installer does not know
		return nil
	}
	if err != nil {
		return fmt.Errorf("selfupdate: %s: %w", state, err)
	}
	return nil
}

// Query answers the update module queries: rollback is supported, and the
// agent must restart (ArtifactReboot) to run the new binary.
func (i *Installer) Query(ctx context.Context, p module.Payload, query string) (string, error) {
	switch query {
	case module.QuerySupportsRollback:
		return "Yes", nil
	case module.QueryNeedsArtifactReboot:
		return "Yes", nil
	}
	return "", nil
}

// checkPayload checks what every step needs from p.
func checkPayload(p module.Payload) error {
	if p.Type != Type {
		return fmt.Errorf("selfupdate: payload %d has type %q, want %q", p.Index, p.Type, Type)
	}
	if p.Tree == "" {
		return fmt.Errorf("selfupdate: payload %d has no tree directory", p.Index)
	}
	return nil
}

var _ module.Installer = (*Installer)(nil)
