package agent

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/internal/pemkey"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/fileinstall"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/scripts"
	"github.com/edgefort/edgefort/updater/selfupdate"
)

// ErrRestart is returned by Run when the agent stopped so that its binary
// can be executed again: a self-update swapped it (or rolled it back).
// The caller re-executes Executable().
var ErrRestart = errors.New("agent restart requested by the updater")

const (
	updatesDir  = "updates"
	authKeyFile = "auth-key.pem"
)

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

// updateDeps are what the update machine needs from the agent.
type updateDeps struct {
	cfg      *config.Config
	db       *store.DB
	log      *slog.Logger
	reporter deploy.Reporter
	ready    func(ctx context.Context) error
}

// newMachine builds the update state machine for cfg. Local installs work
// without a server; the device type is what they need.
func newMachine(d updateDeps) (*deploy.Machine, error) {
	u := d.cfg.Updates
	if d.cfg.Device.DeviceType == "" {
		return nil, errors.New("device.device_type is not set: artifacts name the device types they install on, so set it in the configuration")
	}
	keys, err := loadVerifyKeys(u.VerifyKeys)
	if err != nil {
		return nil, err
	}
	log := d.log.With(LogKeyComponent, "updates")
	runner := &module.Runner{Dir: u.ModulesDir, Timeout: u.ModuleTimeout, Logger: log}
	self := &selfupdate.Installer{Binary: Executable(), Ready: d.ready, HealthTimeout: u.HealthTimeout, Logger: log}
	file := &fileinstall.Installer{Logger: log}
	work := filepath.Join(d.cfg.StateDir, updatesDir)
	opts := deploy.Options{
		Store:      d.db,
		DeviceType: d.cfg.Device.DeviceType,
		WorkDir:    work,
		Installers: func(typ string) (module.Installer, error) {
			switch typ {
			case selfupdate.Type:
				return self, nil
			case fileinstall.Type:
				return file, nil
			}
			return runner.Lookup(typ)
		},
		Scripts: &scripts.Runner{
			RootfsDir:   u.ScriptsDir,
			ArtifactDir: filepath.Join(work, "scripts"),
			Logger:      log,
		},
		Keys:     keys,
		Reporter: d.reporter,
		Logger:   d.log,
	}
	if len(u.RebootCommand) > 0 {
		argv := slices.Clone(u.RebootCommand)
		opts.HostReboot = func(ctx context.Context) error {
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("reboot command %q: %w: %s", argv, err, out)
			}
			return nil
		}
	}
	return deploy.New(opts)
}

func loadVerifyKeys(paths []string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("updates.verify_keys[%d]: %w", i, err)
		}
		k, err := artifact.ParsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("updates.verify_keys[%d]: %s: %w", i, p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// newUpdateClient builds the device API client: TLS from the keystores
// (the device certificate when client_auth_enabled), and the key that
// signs auth requests, made on first use and kept in the state directory.
func (a *Agent) newUpdateClient() (*updater.Client, error) {
	u := a.cfg.Updates
	srv, err := url.Parse(u.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("updates.server_url: %w", err)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
		// The artifact download resumes by byte offset: no transparent
		// decompression.
		DisableCompression: true,
	}
	if config.IsEnabled(u.SSL.Enabled, true) {
		tlsCfg, err := a.keystores.Stores.ClientTLS(u.SSL, srv.Hostname(), keystore.Vars{})
		if err != nil {
			return nil, fmt.Errorf("updates.ssl: %w", err)
		}
		tr.TLSClientConfig = tlsCfg
	}
	key, err := loadOrCreateAuthKey(filepath.Join(a.cfg.StateDir, updatesDir, authKeyFile))
	if err != nil {
		return nil, err
	}
	id := a.cfg.Device.ID
	if id == "" {
		id, _ = os.Hostname()
	}
	return updater.NewClient(updater.ClientOptions{
		ServerURL:    u.ServerURL,
		TenantToken:  u.TenantToken,
		HTTP:         &http.Client{Transport: tr},
		Key:          key,
		Identity:     map[string]any{"edgefort_id": id},
		AgentVersion: a.build.Version,
		Logger:       a.log.With(LogKeyComponent, "updates"),
	})
}

// loadOrCreateAuthKey returns the Ed25519 key that signs auth requests to
// the Mender server, generating it (0600) on first use.
func loadOrCreateAuthKey(path string) (crypto.Signer, error) {
	data, err := atomicfile.ReadFile(path)
	if err == nil {
		k, err := pemkey.Parse(data, nil)
		if err != nil {
			return nil, fmt.Errorf("update auth key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("update auth key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("update auth key: %w", err)
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("update auth key: %w", err)
	}
	return priv, nil
}

// inventory is the configured extra inventory attributes.
func (a *Agent) inventory() []updater.Attribute {
	var attrs []updater.Attribute
	for _, k := range slices.Sorted(maps.Keys(a.cfg.Updates.Inventory)) {
		attrs = append(attrs, updater.Attribute{Name: k, Value: a.cfg.Updates.Inventory[k]})
	}
	return attrs
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

// pollerRunner runs the Poller and turns its restart request into an
// orderly agent restart. It never returns the request to the supervisor,
// which would run the Poller again in this (now outdated) process.
type pollerRunner struct {
	poller  *deploy.Poller
	restart func()
}

func (r *pollerRunner) Run(ctx context.Context) error {
	err := r.poller.Run(ctx)
	if errors.Is(err, module.ErrRestartAgent) {
		r.restart()
		<-ctx.Done()
		return nil
	}
	return err
}

// resumeRunner carries on an interrupted update when there is no poller to
// do it: it signals ready first (a self-update's verify step waits for
// every component), resumes, then idles.
type resumeRunner struct {
	m       *deploy.Machine
	restart func()
	ready   func()
}

func (r *resumeRunner) Run(ctx context.Context) error {
	r.ready()
	_, err := r.m.Resume(ctx)
	switch {
	case errors.Is(err, module.ErrRestartAgent):
		r.restart()
	case err != nil && ctx.Err() == nil:
		return fmt.Errorf("resume the interrupted update: %w", err)
	}
	<-ctx.Done()
	return nil
}

// OpenUpdatesOffline opens the update state machine of a state directory
// no agent runs on, for `edgefort update install|commit|rollback`. close
// releases the state directory.
func OpenUpdatesOffline(cfg *config.Config, log *slog.Logger) (m *deploy.Machine, closeFn func() error, err error) {
	db, err := store.Open(cfg.StateDir, store.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	m, err = newMachine(updateDeps{cfg: cfg, db: db, log: log, ready: func(context.Context) error { return nil }})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return m, db.Close, nil
}
