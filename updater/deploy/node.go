package deploy

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
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
	"time"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/internal/pemkey"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
	"github.com/edgefort/edgefort/updater"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/fileinstall"
	"github.com/edgefort/edgefort/updater/module"
	"github.com/edgefort/edgefort/updater/rootfs"
	"github.com/edgefort/edgefort/updater/scripts"
	"github.com/edgefort/edgefort/updater/selfupdate"
)

// authKeyFile is the Ed25519 key that signs auth requests, in WorkDir.
const authKeyFile = "auth-key.pem"

// Keystores are what the update side needs of the keystore manager: the
// TLS configuration (mutual TLS) of its connection to the server.
type Keystores interface {
	ClientTLS(ssl keystore.SSL, serverName string, vars keystore.Vars) (*tls.Config, error)
}

// NodeDeps are what a Node is built from besides its own section: each
// from the component that owns it, handed over explicitly by the agent.
type NodeDeps struct {
	// Store holds the update's records and the device's provides. Required.
	Store *store.DB
	// DeviceType is the device section's device_type: artifacts name the
	// types they install on. Required.
	DeviceType string
	// DeviceID is the identity sent to the server; empty uses the host
	// name.
	DeviceID string
	// WorkDir holds downloads, Artifact scripts and the auth key
	// (<state_dir>/updates). Required.
	WorkDir string
	// Keystores give the TLS configuration of the server connection;
	// required when the channel is enabled and its ssl block is on.
	Keystores Keystores
	// Binary is the agent's executable, which a self-update replaces.
	Binary string
	// Healthy returns once every component of the (new) agent runs: a
	// self-update's verify step waits for it. Nil counts as healthy.
	Healthy func(ctx context.Context) error
	// Restart stops the agent so that its binary is executed again after a
	// self-update swapped (or rolled back) it. Nil does nothing.
	Restart func()
	// Ready is called once the update side runs. Nil does nothing.
	Ready func()
	// AgentVersion is reported to the server.
	AgentVersion string
	// Logger receives the logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the edgefort_updates_* metrics.
	Registerer prom.Registerer
	// MountInfo and Cmdline replace /proc/self/mountinfo and /proc/cmdline
	// where the rootfs-image installer learns which partition runs: for a
	// simulated A/B device (tests, the dev environment). Empty: the real
	// ones.
	MountInfo, Cmdline string
}

// Node is the update side of the agent: the state machine (local installs
// need nothing more) and, when the channel is enabled, the poller that
// asks the server for deployments and sends inventory.
type Node struct {
	machine *Machine
	poller  *Poller
	deps    NodeDeps
}

// NewNode builds the update side from its validated, defaulted section; it
// starts nothing. With the channel disabled it has no poller, and Run
// carries on an update a crash interrupted.
func NewNode(cfg Config, deps NodeDeps) (*Node, error) {
	deps = withDefaults(deps)
	var client *updater.Client
	if cfg.Enabled {
		var err error
		if client, err = newClient(cfg, deps); err != nil {
			return nil, err
		}
	}
	var reporter Reporter
	if client != nil {
		reporter = client
	}
	m, err := newMachine(cfg, deps, reporter)
	if err != nil {
		return nil, err
	}
	n := &Node{machine: m, deps: deps}
	if client == nil {
		return n, nil
	}
	var metrics *Metrics
	if deps.Registerer != nil {
		if metrics, err = NewMetrics(deps.Registerer); err != nil {
			return nil, err
		}
	}
	n.poller, err = NewPoller(PollerOptions{
		Metrics:           metrics,
		Client:            client,
		Machine:           m,
		PollInterval:      cfg.PollInterval,
		InventoryInterval: cfg.InventoryInterval,
		RetryInterval:     cfg.RetryInterval,
		Inventory:         func() []updater.Attribute { return inventoryAttrs(cfg.Inventory) },
		Download:          updater.DownloadOptions{RateLimit: cfg.DownloadRateLimit},
		Logger:            deps.Logger,
		Ready:             deps.Ready,
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// OpenMachine builds the state machine alone, with no server to report
// to: for installs, commits and rollbacks on a state directory no agent
// runs on.
func OpenMachine(cfg Config, deps NodeDeps) (*Machine, error) {
	return newMachine(cfg, withDefaults(deps), nil)
}

func withDefaults(deps NodeDeps) NodeDeps {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Healthy == nil {
		deps.Healthy = func(context.Context) error { return nil }
	}
	if deps.Restart == nil {
		deps.Restart = func() {}
	}
	if deps.Ready == nil {
		deps.Ready = func() {}
	}
	return deps
}

// Machine is the update state machine.
func (n *Node) Machine() *Machine { return n.machine }

// Poller is the server poller; nil when the channel is disabled.
func (n *Node) Poller() *Poller { return n.poller }

// Run runs the poller, or without one carries on an interrupted update
// and idles, until ctx is done. A self-update's restart request becomes a
// call to deps.Restart: it never returns to the supervisor, which would
// run the poller again in this (now outdated) process.
func (n *Node) Run(ctx context.Context) error {
	if n.poller != nil {
		err := n.poller.Run(ctx)
		if errors.Is(err, module.ErrRestartAgent) {
			n.deps.Restart()
			<-ctx.Done()
			return nil
		}
		return err
	}
	// No server to poll, but an update interrupted by a crash (a local
	// install, or a self-update's restart) must still be carried on. Ready
	// comes first: a self-update's verify step waits for every component.
	n.deps.Ready()
	_, err := n.machine.Resume(ctx)
	switch {
	case errors.Is(err, module.ErrRestartAgent):
		n.deps.Restart()
	case err != nil && ctx.Err() == nil:
		return fmt.Errorf("resume the interrupted update: %w", err)
	}
	<-ctx.Done()
	return nil
}

// newMachine builds the state machine with its installers (self-update,
// single files, update modules) and state scripts; reporter is nil
// without a server.
func newMachine(cfg Config, deps NodeDeps, reporter Reporter) (*Machine, error) {
	if deps.DeviceType == "" {
		return nil, errors.New("device.device_type is not set: artifacts name the device types they install on, so set it in the configuration")
	}
	keys, err := loadVerifyKeys(cfg.VerifyKeys)
	if err != nil {
		return nil, err
	}
	log := deps.Logger.With("component", "updates")
	runner := &module.Runner{Dir: cfg.ModulesDir, Timeout: cfg.ModuleTimeout, Logger: log}
	self := &selfupdate.Installer{Binary: deps.Binary, Ready: deps.Healthy, HealthTimeout: cfg.HealthTimeout, Logger: log}
	file := &fileinstall.Installer{Logger: log}
	rootfsInst, err := newRootfs(cfg, deps, log)
	if err != nil {
		return nil, err
	}
	opts := Options{
		Store:      deps.Store,
		DeviceType: deps.DeviceType,
		WorkDir:    deps.WorkDir,
		Installers: func(typ string) (module.Installer, error) {
			switch typ {
			case selfupdate.Type:
				return self, nil
			case fileinstall.Type:
				return file, nil
			case rootfs.Type:
				if rootfsInst == nil {
					return nil, errors.New("rootfs-image payloads need updates.rootfs_part_a, rootfs_part_b and boot_env in the configuration")
				}
				return rootfsInst, nil
			}
			return runner.Lookup(typ)
		},
		Scripts: &scripts.Runner{
			RootfsDir:   cfg.ScriptsDir,
			ArtifactDir: filepath.Join(deps.WorkDir, "scripts"),
			Logger:      log,
		},
		Keys:       keys,
		Reporter:   reporter,
		Logger:     deps.Logger,
		HostReboot: rebootCommand(cfg.RebootCommand),
	}
	return New(opts)
}

// Boot loaders of updates.boot_env.
const (
	BootEnvUBoot = "uboot"
	BootEnvGRUB  = "grub"
)

// newRootfs builds the rootfs-image installer, or nil when no A/B pair is
// configured.
func newRootfs(cfg Config, deps NodeDeps, log *slog.Logger) (*rootfs.Installer, error) {
	if cfg.RootfsPartA == "" && cfg.RootfsPartB == "" {
		return nil, nil
	}
	var env bootenv.Env
	switch cfg.BootEnv {
	case BootEnvUBoot:
		env = &bootenv.UBoot{Config: cfg.FWEnvConfig}
	case BootEnvGRUB:
		env = &bootenv.GRUB{Dir: cfg.GRUBEnvDir}
	default:
		return nil, fmt.Errorf("updates.boot_env: %q is not %s or %s", cfg.BootEnv, BootEnvUBoot, BootEnvGRUB)
	}
	in, err := rootfs.New(rootfs.Options{
		PartA: cfg.RootfsPartA, PartB: cfg.RootfsPartB, Env: env, ReadBack: cfg.RootfsReadBack,
		Ready: deps.Healthy, HealthTimeout: cfg.HealthTimeout, Logger: log,
		MountInfo: deps.MountInfo, Cmdline: deps.Cmdline,
	})
	if err != nil {
		return nil, fmt.Errorf("updates: %w", err)
	}
	return in, nil
}

// rebootCommand runs argv to reboot the host; nil when none is set.
func rebootCommand(argv []string) func(ctx context.Context) error {
	if len(argv) == 0 {
		return nil
	}
	argv = slices.Clone(argv)
	return func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("reboot command %q: %w: %s", argv, err, out)
		}
		return nil
	}
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

// inventoryAttrs is the configured extra inventory attributes, by name.
func inventoryAttrs(inv map[string]string) []updater.Attribute {
	var attrs []updater.Attribute
	for _, k := range slices.Sorted(maps.Keys(inv)) {
		attrs = append(attrs, updater.Attribute{Name: k, Value: inv[k]})
	}
	return attrs
}

// newClient builds the device API client: TLS from the keystores (the
// device certificate when client_auth_enabled), and the key that signs
// auth requests, made on first use and kept in WorkDir.
func newClient(cfg Config, deps NodeDeps) (*updater.Client, error) {
	srv, err := url.Parse(cfg.ServerURL)
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
	if cfg.SSL.Enabled == nil || *cfg.SSL.Enabled {
		if deps.Keystores == nil {
			return nil, errors.New("updates.ssl: no keystores to build the TLS configuration from")
		}
		tlsCfg, err := deps.Keystores.ClientTLS(cfg.SSL, srv.Hostname(), keystore.Vars{})
		if err != nil {
			return nil, fmt.Errorf("updates.ssl: %w", err)
		}
		tr.TLSClientConfig = tlsCfg
	}
	key, err := loadOrCreateAuthKey(filepath.Join(deps.WorkDir, authKeyFile))
	if err != nil {
		return nil, err
	}
	id := deps.DeviceID
	if id == "" {
		id, _ = os.Hostname()
	}
	return updater.NewClient(updater.ClientOptions{
		ServerURL:    cfg.ServerURL,
		TenantToken:  cfg.TenantToken,
		HTTP:         &http.Client{Transport: tr},
		Key:          key,
		Identity:     map[string]any{"edgefort_id": id},
		AgentVersion: deps.AgentVersion,
		Logger:       deps.Logger.With("component", "updates"),
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
