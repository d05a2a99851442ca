// Package module runs Mender Update Modules (protocol v3): it looks up the
// executable for a payload type, prepares the module's file tree, streams
// payload files to the module's Download state through named pipes (or
// stores them under files/ when the module does not read them), and runs
// the other states and the query calls. The update state machine that
// decides which state comes next lives in package updater; this package
// runs one call at a time.
//
// The stock modules of mender-client (single-file, directory, script, deb,
// rpm) work unchanged.
package module

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefort/edgefort/updater/artifact"
)

// States of the update module protocol, passed as the module's first
// argument.
const (
	StateDownload                     = "Download"
	StateArtifactInstall              = "ArtifactInstall"
	StateArtifactReboot               = "ArtifactReboot"
	StateArtifactVerifyReboot         = "ArtifactVerifyReboot"
	StateArtifactCommit               = "ArtifactCommit"
	StateCleanup                      = "Cleanup"
	StateArtifactRollback             = "ArtifactRollback"
	StateArtifactRollbackReboot       = "ArtifactRollbackReboot"
	StateArtifactRollbackVerifyReboot = "ArtifactRollbackVerifyReboot"
	StateArtifactFailure              = "ArtifactFailure"
)

// Query calls: the module answers on stdout.
const (
	QuerySupportsRollback           = "SupportsRollback"
	QueryNeedsArtifactReboot        = "NeedsArtifactReboot"
	QuerySupportsAugmentedArtifacts = "SupportsAugmentedArtifacts"
	QueryListSupportedOriginalTypes = "ListSupportedOriginalTypes"
	QueryPermittedAugmentedHeaders  = "PermittedAugmentedHeaders"
)

// Defaults for zero Runner fields.
const (
	DefaultTimeout   = 4 * time.Hour // Mender's ModuleTimeoutSeconds, 14400
	DefaultKillGrace = 60 * time.Second
)

// Log keys.
const (
	logKeyModule = "module"
	logKeyState  = "state"
	logKeyStderr = "stderr"
	logKeyTree   = "tree"
)

// Payload names one payload of the Artifact being installed.
type Payload struct {
	Index int    // NNNN
	Type  string // update type, e.g. "single-file"
	Tree  string // the module's work dir: <root>/payloads/NNNN/tree
}

// Installer installs payloads of one update type: an update module, or a
// built-in.
type Installer interface {
	// Download starts the Download state; the caller then Stores each
	// payload file in order and calls Finish.
	Download(ctx context.Context, p Payload) (Download, error)
	// Call runs one state (ArtifactInstall, ArtifactReboot,
	// ArtifactVerifyReboot, ArtifactCommit, Cleanup, ArtifactRollback,
	// ArtifactRollbackReboot, ArtifactRollbackVerifyReboot,
	// ArtifactFailure). Exit 0 = nil.
	Call(ctx context.Context, p Payload, state string) error
	// Query runs a query state (SupportsRollback, NeedsArtifactReboot, ...)
	// and returns stdout, trailing newlines trimmed.
	Query(ctx context.Context, p Payload, query string) (string, error)
}

// Download is a running Download state.
type Download interface {
	// Store hands one payload file to the module. It reads r to EOF; r's
	// final Read returns an error wrapping artifact.ErrChecksum on
	// mismatch, which Store returns.
	Store(f *artifact.File, r io.Reader) error
	// Finish, after the last Store, signals the end of the streams (a
	// zero-length stream-next) and waits for the module's Download to
	// exit; exit 0 = nil.
	Finish(ctx context.Context) error
	// Abort kills the module's process group and waits for it. It is safe
	// after Finish, and twice.
	Abort()
}

// Runner finds and runs update modules. The zero value of every field but
// Dir means its default.
type Runner struct {
	// Dir is the modules directory, e.g. /usr/share/mender/modules/v3; the
	// module for type T is the executable Dir/T. Required.
	Dir string
	// Timeout limits each call; default 4h (Mender's ModuleTimeoutSeconds).
	Timeout time.Duration
	// KillGrace is how long a timed-out module's process group has between
	// SIGTERM and SIGKILL; default 60s.
	KillGrace time.Duration
	// Logger receives the modules' stderr and the calls made; nil discards.
	Logger *slog.Logger
}

// Lookup returns the Installer for update type typ: the executable
// Dir/typ. typ must be a plain file name.
func (r *Runner) Lookup(typ string) (Installer, error) {
	if !plainName(typ) {
		return nil, fmt.Errorf("update module for type %q: not a valid type name", typ)
	}
	if r.Dir == "" {
		return nil, fmt.Errorf("update module for type %q: no modules directory configured", typ)
	}
	path, err := filepath.Abs(filepath.Join(r.Dir, typ)) // the module runs in its tree
	if err != nil {
		return nil, fmt.Errorf("update module for type %q: %w", typ, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("update module for type %q: %w", typ, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("update module for type %q: %s is not an executable file", typ, path)
	}
	m := &module{typ: typ, path: path, cfg: *r}
	if m.cfg.Timeout <= 0 {
		m.cfg.Timeout = DefaultTimeout
	}
	if m.cfg.KillGrace <= 0 {
		m.cfg.KillGrace = DefaultKillGrace
	}
	if m.cfg.Logger == nil {
		m.cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m.log = m.cfg.Logger.With(logKeyModule, typ)
	return m, nil
}

// plainName reports whether s is usable as one file name.
func plainName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// Error is the error of a module call that failed.
type Error struct {
	Module string // update type
	State  string
	Err    error  // exit status, ErrTimeout, context error, or I/O failure
	Stderr string // the tail of the module's stderr, possibly empty
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("update module %s: %s: %v", e.Module, e.State, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// module is an update module executable.
type module struct {
	typ  string
	path string
	cfg  Runner // defaults applied
	log  *slog.Logger
}

// start starts one call of the module in tree.
func (m *module) start(ctx context.Context, p Payload, state string, stdout bool) (*proc, error) {
	if p.Tree == "" {
		return nil, m.errorf(state, "", errors.New("no file tree given"))
	}
	if err := ctx.Err(); err != nil {
		return nil, m.errorf(state, "", err)
	}
	cmd := exec.Command(m.path, state, p.Tree)
	cmd.Dir = p.Tree
	m.log.Debug("running update module", logKeyState, state, logKeyTree, p.Tree)
	pr, err := startProc(ctx, cmd, stdout, m.cfg.Timeout, m.cfg.KillGrace)
	if err != nil {
		return nil, m.errorf(state, "", err)
	}
	return pr, nil
}

// finish waits for pr and turns its outcome into nil or an *Error,
// logging stderr.
func (m *module) finish(pr *proc, state string) error {
	err := pr.wait()
	return m.outcome(pr, state, err)
}

func (m *module) outcome(pr *proc, state string, err error) error {
	stderr := pr.stderr.String()
	if err != nil {
		m.log.Warn("update module failed", logKeyState, state, "err", err, logKeyStderr, stderr)
		return m.errorf(state, stderr, err)
	}
	if stderr != "" {
		m.log.Info("update module stderr", logKeyState, state, logKeyStderr, stderr)
	}
	return nil
}

func (m *module) errorf(state, stderr string, err error) error {
	return &Error{Module: m.typ, State: state, Err: err, Stderr: stderr}
}

func (m *module) Call(ctx context.Context, p Payload, state string) error {
	if state == StateDownload {
		return m.errorf(state, "", errors.New("use Download for the Download state"))
	}
	pr, err := m.start(ctx, p, state, false)
	if err != nil {
		return err
	}
	return m.finish(pr, state)
}

func (m *module) Query(ctx context.Context, p Payload, query string) (string, error) {
	pr, err := m.start(ctx, p, query, true)
	if err != nil {
		return "", err
	}
	if err := m.finish(pr, query); err != nil {
		return "", err
	}
	out, overflow := pr.stdout.Bytes()
	if overflow {
		return "", m.errorf(query, "", fmt.Errorf("answer is longer than %d bytes", maxStdout))
	}
	return strings.TrimRight(string(out), "\r\n"), nil
}

var _ Installer = (*module)(nil)
