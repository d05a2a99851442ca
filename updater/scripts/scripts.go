// Package scripts runs Mender state scripts: the device's own scripts for
// the Idle, Sync and Download states, and the scripts an Artifact ships
// for the Artifact* states, which Store keeps until the update ends. It
// follows Mender's rules for names, order, the version file, timeouts and
// the "retry later" exit code 21. Whether a failure changes the update's
// path is the caller's decision; Ignored says where Mender ignores them.
package scripts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Actions: when a state's scripts run.
const (
	ActionEnter = "Enter"
	ActionLeave = "Leave"
	ActionError = "Error"
)

// States with scripts. Idle, Sync and Download use the device's scripts
// (Runner.RootfsDir); the others the Artifact's (Runner.ArtifactDir).
const (
	StateIdle                   = "Idle"
	StateSync                   = "Sync"
	StateDownload               = "Download"
	StateArtifactInstall        = "ArtifactInstall"
	StateArtifactReboot         = "ArtifactReboot"
	StateArtifactCommit         = "ArtifactCommit"
	StateArtifactRollback       = "ArtifactRollback"
	StateArtifactRollbackReboot = "ArtifactRollbackReboot"
	StateArtifactFailure        = "ArtifactFailure"
)

var (
	rootfsStates   = []string{StateIdle, StateSync, StateDownload}
	artifactStates = []string{StateArtifactInstall, StateArtifactReboot, StateArtifactCommit,
		StateArtifactRollback, StateArtifactRollbackReboot, StateArtifactFailure}
)

// Defaults for zero Runner fields.
const (
	DefaultTimeout       = time.Hour        // StateScriptTimeoutSeconds
	DefaultRetryInterval = time.Minute      // StateScriptRetryIntervalSeconds
	DefaultRetryTimeout  = 30 * time.Minute // StateScriptRetryTimeoutSeconds
)

// ExitRetryLater is the exit code with which a script asks to be run again
// later.
const ExitRetryLater = 21

// versionFile names the file holding the scripts format version.
const versionFile = "version"

// namePattern is what a script's name must match: State_Action_NN[_text].
var namePattern = regexp.MustCompile(`^([A-Za-z]+)_(Enter|Leave|Error)_[0-9][0-9](_\S+)?$`)

// Log keys.
const (
	logKeyScript = "script"
	logKeyStderr = "stderr"
	logKeyDir    = "dir"
)

// Runner runs state scripts. Zero durations mean their defaults.
type Runner struct {
	// RootfsDir holds the device's scripts for Idle, Sync and Download,
	// e.g. /etc/edgefort/scripts; "" = none.
	RootfsDir string
	// ArtifactDir is where the current Artifact's scripts are stored (by
	// Store) and run from. Required for Store and the Artifact* states.
	ArtifactDir string
	// Timeout limits each run of a script; the process group is killed when
	// it expires. Default 1h.
	Timeout time.Duration
	// RetryInterval: a script exiting 21 ("retry later") is rerun after
	// this. Default 60s.
	RetryInterval time.Duration
	// RetryTimeout: retrying stops, with an error, once the script has kept
	// asking for this long. Default 30m.
	RetryTimeout time.Duration
	// Logger receives skipped names and the scripts' stderr; nil discards.
	Logger *slog.Logger
	// OnScript, when set, is called before (finished=false) and after
	// (finished=true) each run of a script, e.g. to report substates.
	OnScript func(name string, finished bool)
}

// withDefaults returns a copy of r with defaults filled in.
func (r *Runner) withDefaults() *Runner {
	c := *r
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.RetryTimeout <= 0 {
		c.RetryTimeout = DefaultRetryTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnScript == nil {
		c.OnScript = func(string, bool) {}
	}
	return &c
}

// Ignored reports whether Mender ignores a failure of the scripts of this
// state and action: Error scripts, Idle, ArtifactRollback,
// ArtifactRollbackReboot and ArtifactFailure.
func Ignored(state, action string) bool {
	switch {
	case action == ActionError,
		state == StateIdle,
		state == StateArtifactRollback,
		state == StateArtifactRollbackReboot,
		state == StateArtifactFailure:
		return true
	}
	return false
}

// Run runs the scripts of state and action ("Enter", "Leave" or "Error")
// in lexical order: Idle, Sync and Download from RootfsDir, the Artifact*
// states from ArtifactDir. A missing directory has no scripts. A directory
// holding scripts must have a version file of 2 or 3. Names not matching
// State_Action_NN[_text] are skipped with a warning; a matching script
// that is not executable is an error.
//
// Run returns the first failure. It stops there, unless Ignored(state,
// action): then it runs the remaining scripts too (the caller logs and
// ignores the error).
func (r *Runner) Run(ctx context.Context, state, action string) error {
	c := r.withDefaults()
	dir, err := c.dirFor(state, action)
	if err != nil || dir == "" {
		return err
	}
	names, err := c.list(dir, state, action)
	if err != nil {
		return err
	}
	ignored := Ignored(state, action)
	var first error
	for _, name := range names {
		err := c.runScript(ctx, dir, name)
		if err == nil {
			continue
		}
		if !ignored {
			return err
		}
		c.Logger.Warn("ignoring state script failure", logKeyScript, name, "err", err)
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return first
}

// dirFor returns the scripts directory for state, after checking state
// and action.
func (r *Runner) dirFor(state, action string) (string, error) {
	switch action {
	case ActionEnter, ActionLeave, ActionError:
	default:
		return "", fmt.Errorf("state scripts %s_%s: unknown action %q", state, action, action)
	}
	switch {
	case slices.Contains(rootfsStates, state):
		return r.RootfsDir, nil
	case slices.Contains(artifactStates, state):
		if r.ArtifactDir == "" {
			return "", fmt.Errorf("state scripts %s_%s: no Artifact scripts directory configured", state, action)
		}
		return r.ArtifactDir, nil
	}
	return "", fmt.Errorf("state scripts %s_%s: unknown state %q", state, action, state)
}

// list returns the names of the scripts for state and action in dir, in
// lexical order, checking the version file and that they are executable.
func (r *Runner) list(dir, state, action string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state scripts: %w", err)
	}
	var names []string
	anyScripts := false
	for _, e := range entries {
		name := e.Name()
		if name == versionFile {
			continue
		}
		m := namePattern.FindStringSubmatch(name)
		if m == nil {
			r.Logger.Warn("skipping state script with an invalid name", logKeyScript, name, logKeyDir, dir)
			continue
		}
		anyScripts = true
		if m[1] == state && m[2] == action {
			names = append(names, name)
		}
	}
	if !anyScripts {
		return nil, nil
	}
	if err := checkVersion(dir); err != nil {
		return nil, err
	}
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("state script %s: %w", name, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("state script %s: %s is not an executable file", name, filepath.Join(dir, name))
		}
	}
	return names, nil
}

// checkVersion requires dir/version to hold 2 or 3.
func checkVersion(dir string) error {
	path := filepath.Join(dir, versionFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("state scripts in %s: refused: %w", dir, err)
	}
	switch v := strings.TrimSpace(string(data)); v {
	case "2", "3":
		return nil
	default:
		return fmt.Errorf("state scripts in %s: refused: %s holds %q, want 2 or 3", dir, path, v)
	}
}

// runScript runs one script, rerunning it while it exits 21 until
// RetryTimeout.
func (r *Runner) runScript(ctx context.Context, dir, name string) error {
	path := filepath.Join(dir, name)
	start := time.Now()
	for attempt := 1; ; attempt++ {
		r.OnScript(name, false)
		stderr, err := execScript(ctx, path, dir, r.Timeout)
		r.OnScript(name, true)
		if stderr != "" {
			r.Logger.Info("state script stderr", logKeyScript, name, logKeyStderr, stderr)
		}
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != ExitRetryLater {
			if err != nil {
				return scriptError(name, err, stderr)
			}
			return nil
		}
		if time.Since(start)+r.RetryInterval > r.RetryTimeout {
			return scriptError(name, fmt.Errorf("still asking to retry later (exit %d) after %d runs in %v", ExitRetryLater, attempt, r.RetryTimeout), stderr)
		}
		r.Logger.Info("state script asks to retry later", logKeyScript, name, "retry_in", r.RetryInterval)
		t := time.NewTimer(r.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return scriptError(name, ctx.Err(), stderr)
		case <-t.C:
		}
	}
}

func scriptError(name string, err error, stderr string) error {
	if s := strings.TrimSpace(stderr); s != "" {
		return fmt.Errorf("state script %s: %w: %s", name, err, s)
	}
	return fmt.Errorf("state script %s: %w", name, err)
}
