package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/updater/deploy"
)

// ErrRestart is returned by Run when the agent stopped so that its binary
// can be executed again: a self-update swapped it (or rolled it back).
// The caller re-executes Executable().
var ErrRestart = errors.New("agent restart requested by the updater")

// updatesDir holds the update side's work files in the state directory.
const updatesDir = "updates"

// executable is the agent's binary, resolved once at start: after a
// self-update renames a new file over it, /proc/self/exe points at the
// old, deleted inode, but this path names the new binary.
var executable = sync.OnceValue(func() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
})

// Executable is the path of the agent's binary.
func Executable() string { return executable() }

// updateDeps are what the update side (deploy.Node) needs from the rest of
// the process: the store, the device section, the keystores for mutual
// TLS, and the agent's readiness and restart hooks for self-updates.
// Outside Run (the offline commands) the hooks and keystores are unset.
func updateDeps(cfg *config.Config, db *store.DB, log *slog.Logger, version string) deploy.NodeDeps {
	return deploy.NodeDeps{
		Store:        db,
		DeviceType:   cfg.Device.DeviceType,
		DeviceID:     cfg.Device.ID,
		WorkDir:      filepath.Join(cfg.StateDir, updatesDir),
		Binary:       Executable(),
		AgentVersion: version,
		Logger:       log,
	}
}

// updateComponents builds the update side (local installs need only a
// device type; the poller comes when the update channel is enabled).
func (a *Agent) updateComponents() (*deploy.Node, error) {
	if a.cfg.Device.DeviceType == "" {
		return nil, nil
	}
	deps := updateDeps(a.cfg, a.db, a.log, a.build.Version)
	deps.Keystores = a.keystores.Stores
	deps.Healthy = a.waitReady
	deps.Restart = a.restart
	deps.Ready = a.readyFunc("updates")
	deps.Registerer = a.reg
	deps.MountInfo, deps.Cmdline = a.running.MountInfo, a.running.Cmdline
	return deploy.NewNode(a.cfg.Updates, deps)
}

// waitReady returns once every component runs, for the self-update's
// health check.
func (a *Agent) waitReady(ctx context.Context) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if a.Ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("components not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// OpenUpdatesOffline opens the update state machine of a state directory
// no agent runs on, for `edgefort update install|commit|rollback`. close
// releases the state directory.
func OpenUpdatesOffline(cfg *config.Config, log *slog.Logger) (m *deploy.Machine, closeFn func() error, err error) {
	db, err := store.Open(cfg.StateDir, store.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	m, err = deploy.OpenMachine(cfg.Updates, updateDeps(cfg, db, log, ""))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return m, db.Close, nil
}
