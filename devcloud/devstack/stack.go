package devstack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/atomicfile"
)

// Options configure Start.
type Options struct {
	// StateDir is the state directory, made and prepared if needed.
	// Required; absolute.
	StateDir string
	// LogLevel is the agent's log level written into the configuration.
	// Empty: info.
	LogLevel string
	// Logger receives the devcloud servers' logs. Nil: discard.
	Logger *slog.Logger
	// IdPs starts the dev identity providers and the virtual host sso.
	IdPs IdPOptions
	// Cloud tunes the devcloud servers, for benchmarks. The zero value is
	// devcloud's defaults.
	Cloud CloudOptions
}

// CloudOptions tune the devcloud servers of a stack.
type CloudOptions struct {
	// Wire, when set, counts the traffic of the update server, the
	// control plane and the broker (scripts/bench/idlecost).
	Wire *devcloud.WireCounter
}

// Stack is a running dev environment, the agent aside: the caller runs
// the agent on Config (see RunAgent) and closes the stack after it.
type Stack struct {
	ConfigPath string
	Config     *config.Config
	Info       Info

	stateDir string
	engine   *engine
	module   *devcloud.AuthModule
	idps     *idps   // nil without the dev IdPs
	device   *device // the simulated A/B device
	booted   atomic.Pointer[string]
	closers  []func() // undone in reverse by Close
}

// Start prepares the state directory, starts the devcloud servers and the
// engine stand-in, enrolls the node with the control plane, writes the
// configuration and then the Info file. On error, what started is closed.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tools idpTools
	if opts.IdPs.Enabled {
		// Before anything starts: a missing node is said at once.
		var err error
		if tools, err = findIdPTools(opts.IdPs); err != nil {
			return nil, err
		}
	}
	dir := opts.StateDir
	if err := PrepareState(dir); err != nil {
		return nil, fmt.Errorf("prepare %s: %w", dir, err)
	}
	ca, err := LoadCA(filepath.Join(dir, CADir))
	if err != nil {
		return nil, err
	}
	s := &Stack{stateDir: dir, ConfigPath: filepath.Join(dir, ConfigFile), Info: Info{PID: os.Getpid()}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.device, err = openDevice(filepath.Join(dir, DeviceDir)); err != nil {
		return nil, fmt.Errorf("simulated A/B device: %w", err)
	}
	s.onClose(s.device.close)
	srv, err := s.startMender(ca, opts.Cloud, log)
	if err != nil {
		return nil, fmt.Errorf("update server: %w", err)
	}
	params := ConfigParams{StateDir: dir, LogLevel: opts.LogLevel, ServerURL: srv.URL(), ModulesDir: ModulesDirFor(dir)}
	if err := s.writeConfig(params); err != nil {
		return nil, err
	}
	cp, err := s.startControl(ctx, ca, srv.URL(), opts.Cloud, log)
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	// The event link needs the thing name, which is the device ID the
	// enrollment just gave: the configuration is written again with it.
	broker, err := s.startBroker(ca, cp, opts.Cloud.Wire, log)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	// The engine checks the identity JWT against the node's JWKS, whose
	// URL RunAgent gives it once the hub is bound.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	engine, err := startEngineWith(dir, engineOptions{RootCAs: pool, Issuer: "edgefort:" + s.Config.Device.ID, Audience: identityAudience})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	s.engine = engine
	s.onClose(engine.Close)
	module, err := s.startAuthModule(pool, log)
	if err != nil {
		return nil, fmt.Errorf("auth module: %w", err)
	}
	params.ModuleURL = module.URL()
	params.ThingName, params.BrokerHost, params.BrokerRegion, params.EngineURL = s.Info.ControlPlane.DeviceID, broker.Host(), broker.Region(), engine.URL()
	params.ControlURL = cp.URL()
	if opts.IdPs.Enabled {
		if s.idps, err = s.startIdPs(ctx, tools, ca, log); err != nil {
			return nil, err
		}
		params.SSOBase, params.SAMLMetadataURL = s.idps.base, s.idps.samlIdP+"/metadata"
		params.OIDCIssuer, params.OIDCClientSecret = s.idps.issuer, s.idps.secret
		s.Info.IdPs = s.idps.info()
	}
	if err := s.writeConfig(params); err != nil {
		return nil, err
	}
	if err := writeInfo(dir, &s.Info); err != nil {
		return nil, err
	}
	s.onClose(func() { os.Remove(filepath.Join(dir, InfoFile)) })
	return s, nil
}

func (s *Stack) onClose(f func()) { s.closers = append(s.closers, f) }

// Close removes the Info file and stops what Start started, in reverse.
func (s *Stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func (s *Stack) writeConfig(p ConfigParams) error {
	data, err := Config(p)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.ConfigPath, data, 0o600); err != nil {
		return err
	}
	cfg, err := config.Parse(s.ConfigPath, data)
	if err != nil {
		return err
	}
	s.Config = cfg
	return nil
}

func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startMender starts the update server the agent polls: a server
// certificate from the dev CA, mutual TLS against the same CA, and the
// management API behind a fresh token.
func (s *Stack) startMender(ca *devcloud.CA, c CloudOptions, log *slog.Logger) (*devcloud.MenderServer, error) {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tok := newToken()
	srv, err := devcloud.NewMenderServer(devcloud.MenderOptions{
		CA: ca, ClientCAs: pool, ManagementToken: tok, Logger: log, Wire: c.Wire,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	s.onClose(func() { srv.Close() })
	s.Info.UpdateServer = UpdateServerInfo{URL: srv.URL(), ManagementToken: tok}
	return srv, nil
}

// The users the banner's tokens are for: alice is a developer in sales,
// bob a viewer there through the group analysts (see defaultPolicy).
const (
	devUser    = "alice"
	viewerUser = "bob"
)

// devProxyAddr is the dev "reverse proxy" the virtual host proxied
// trusts (dev.yaml): a loopback address a client binds to, such as curl
// --interface 127.0.0.2.
const devProxyAddr = "127.0.0.2"

// identityAudience is the aud of the identity JWT the hub hands the
// engine (dev.yaml), which the engine requires.
const identityAudience = "local-engine"

// PolicyFile is the control plane's policy under the state directory,
// read at start; a new state directory starts with defaultPolicy (a kept
// one keeps the policy it was first given).
var PolicyFile = filepath.Join(CloudDir, "policy.yaml")

const defaultPolicy = `# Authorization policy of the dev control plane (devcloud). Edit and
# restart edgefort-dev to change it.
version: 1
ttl: {allow: 60s, deny: 10s}
roles:
  viewer: [app.read]
  developer: [app.read, app.reload]
groups:
  analysts: [bob]
spaces:
  sales:
    members:
      user:alice: developer
      group:analysts: viewer
  # The hub's GET /public/ route admits requests without a token as the
  # user anonymous.
  public:
    members:
      user:anonymous: viewer
`

func (s *Stack) readPolicy() (*devcloud.Policy, error) {
	path := filepath.Join(s.stateDir, PolicyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, []byte(defaultPolicy), 0o600); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	policy, err := devcloud.ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return policy, nil
}

// startControl starts the control plane and enrolls the node with it. The
// control plane keeps its state in memory, so the node enrolls afresh at
// every start (a new device ID; the stores of the previous enrollment are
// replaced).
func (s *Stack) startControl(ctx context.Context, ca *devcloud.CA, updateURL string, c CloudOptions, log *slog.Logger) (*devcloud.ControlPlane, error) {
	policy, err := s.readPolicy()
	if err != nil {
		return nil, err
	}
	mtok := newToken()
	cp, err := devcloud.NewControlPlane(devcloud.ControlPlaneOptions{
		CA: ca, Policy: policy, UpdateServerURL: updateURL, ManagementToken: mtok, Logger: log,
		Wire: c.Wire,
	})
	if err != nil {
		return nil, err
	}
	if err := cp.Start(); err != nil {
		return nil, err
	}
	s.onClose(func() { cp.Close() })
	e, err := agent.EnrollOffline(ctx, s.Config, agent.EnrollOptions{
		URL: cp.URL(), Token: cp.NewEnrollmentToken(), CAFile: filepath.Join(s.stateDir, CADir, devcloud.CACertFile), Force: true,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("enroll with the dev control plane: %w", err)
	}
	tok, err := cp.MintUserToken(api.User{ID: devUser, Directory: "dev", Groups: []string{"staff"}}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	bob, err := cp.MintUserToken(api.User{ID: viewerUser, Directory: "dev", Groups: []string{"analysts"}}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	s.Info.ControlPlane = ControlPlaneInfo{URL: cp.URL(), DeviceID: e.DeviceID, UserToken: tok, ViewerToken: bob, ManagementToken: mtok}
	return cp, nil
}

// PortalCookie is the cookie the dev portal sets and the hub's
// session_module solution reads.
const PortalCookie = "PortalSession"

// startAuthModule starts the dev authentication module and portal with
// the certificate PrepareState issued; RunAgent tells it where the node's
// auth API is once bound.
func (s *Stack) startAuthModule(roots *x509.CertPool, log *slog.Logger) (*devcloud.AuthModule, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.stateDir, AuthModuleCert), filepath.Join(s.stateDir, AuthModuleKey))
	if err != nil {
		return nil, err
	}
	m, err := devcloud.NewAuthModule(devcloud.AuthModuleOptions{
		Certificate: cert, RootCAs: roots, Directory: "dev", Cookie: PortalCookie, Logger: log,
		// As the control plane's tokens (startControl): bob is an analyst.
		Groups: map[string][]string{devUser: {"staff"}, viewerUser: {"analysts"}},
	})
	if err != nil {
		return nil, err
	}
	if err := m.Start(); err != nil {
		return nil, err
	}
	s.module = m
	s.onClose(func() { m.Close() })
	s.Info.AuthModule = AuthModuleInfo{URL: m.URL(), Cert: filepath.Join(s.stateDir, AuthModuleCert), Key: filepath.Join(s.stateDir, AuthModuleKey)}
	return m, nil
}

// startBroker starts the SigV4-checking broker, with the control plane's
// credentials and the Jobs and Shadow services on it.
func (s *Stack) startBroker(ca *devcloud.CA, cp *devcloud.ControlPlane, wire *devcloud.WireCounter, log *slog.Logger) (*devcloud.Broker, error) {
	tok := newToken()
	b, err := devcloud.NewBroker(devcloud.BrokerOptions{CA: ca, Lookup: devcloud.ControlPlaneLookup(cp), ManagementToken: tok, Logger: log, Wire: wire})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	s.onClose(func() { b.Close() })
	jobs := devcloud.NewJobs(b, log)
	s.onClose(jobs.Close)
	shadow := devcloud.NewShadow(b, log)
	s.onClose(shadow.Close)
	thing := s.Info.ControlPlane.DeviceID
	s.Info.Broker = BrokerInfo{Host: b.Host(), Region: b.Region(), Thing: thing, EventsTopic: "edgefort/" + thing + "/events", ManagementToken: tok}
	return b, nil
}
