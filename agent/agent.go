// Package agent owns the edgefort process: it turns a loaded configuration
// into running components, supervises them, holds the state store, and
// serves the local admin API and the Prometheus metrics.
//
// Configuration lives in agent/config; the supervisor and the state store
// are ground packages (internal/supervisor, internal/store) that components
// may use too. Components never import this package.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/keystore"
)

// BuildInfo identifies the binary.
type BuildInfo struct {
	Version string
	Commit  string
}

// Agent is one running edgefort.
type Agent struct {
	cfg     *config.Config
	log     *slog.Logger
	build   BuildInfo
	reg     *prom.Registry
	started time.Time

	sup         atomic.Pointer[supervisor.Supervisor] // set once Run has opened the store and built the components
	metricsAddr atomic.Pointer[string]                // bound address, known once the listener is up
	db          *store.DB                             // open while Run runs
	keystores   *adminapi.LocalKeystores              // open while Run runs
	clients     atomic.Pointer[clientapi.Server]      // set when virtual hosts are configured
	authAPI     atomic.Pointer[authapi.API]           // set when clients.auth_api is on
	links       atomic.Pointer[links]                 // the link nodes, set once components() built them
	restart     func()                                // stops Run with ErrRestart
	runCtx      context.Context                       // Run's context, for work admin calls start
	level       *slog.LevelVar                        // the logger's level, for settings driven at run time; may be nil
	running     RunningSystem                         // where the rootfs installer reads the booted partition; zero: /proc

	extra []supervisor.Spec // components added by tests, started last
}

// New prepares an agent for a valid configuration; it starts nothing.
func New(cfg *config.Config, log *slog.Logger, build BuildInfo) (*Agent, error) {
	return &Agent{cfg: cfg, log: log, build: build, reg: newRegistry(build)}, nil
}

// SetLevelVar hands the agent its logger's level so that the level can be
// driven at run time (the device shadow's log_level). Call before Run.
func (a *Agent) SetLevelVar(lv *slog.LevelVar) { a.level = lv }

// RunningSystem names the files the rootfs-image installer reads to learn
// which partition of the A/B pair runs, in place of /proc/self/mountinfo
// and /proc/cmdline. The zero value means those. It is set only through
// SetRunningSystem, by code that simulates a device (edgefort-dev, tests):
// no configuration field reaches it, so no configuration can point a real
// device's agent at a file that lies about its root.
type RunningSystem struct {
	MountInfo, Cmdline string
}

// SetRunningSystem points the rootfs-image installer at a simulated
// device's mountinfo and kernel command line. Call before Run.
func (a *Agent) SetRunningSystem(rs RunningSystem) { a.running = rs }

// Registry is the agent's metrics registry, for components to register on.
func (a *Agent) Registry() *prom.Registry { return a.reg }

// Run opens the state store, starts every component and blocks until ctx
// is cancelled; it then stops them in reverse order within the configured
// shutdown timeout. It returns an error if set-up fails (a second agent on
// the same state directory, a busy port) or if a component does not stop in
// time.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.restart = func() { cancel(ErrRestart) }
	a.runCtx = ctx
	a.started = time.Now()
	db, err := store.Open(a.cfg.StateDir, store.Options{Logger: a.log.With(LogKeyComponent, "store")})
	if err != nil {
		return err
	}
	a.db = db
	defer db.Close()

	if a.keystores, err = a.runKeystores(); err != nil {
		return err
	}
	a.reg.MustRegister(a.keystores.Stores.ExpiryCollector())

	specs, err := a.components()
	if err != nil {
		return err
	}
	sup, err := supervisor.New(supervisor.Options{
		Logger: a.log,
		Backoff: supervisor.Backoff{
			Initial:    a.cfg.Supervisor.RestartInitial,
			Max:        a.cfg.Supervisor.RestartMax,
			ResetAfter: a.cfg.Supervisor.RestartResetAfter,
		},
		Registerer: a.reg,
	}, specs...)
	if err != nil {
		closeListeners(specs) // bound by components, served by no one
		return err
	}
	a.sup.Store(sup)
	defer a.notifySystemd(ctx, sup)()

	supCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	go func() { done <- sup.Run(supCtx) }()
	a.log.Info("agent started", "version", a.build.Version, "state_dir", a.cfg.StateDir, "admin_socket", a.cfg.Admin.Socket)

	select {
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("supervisor stopped on its own: %w", err)
	}
	a.log.Info("shutting down", "timeout", a.cfg.Supervisor.ShutdownTimeout)
	stop()
	timer := time.NewTimer(a.cfg.Supervisor.ShutdownTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		a.log.Info("stopped")
		if err == nil && errors.Is(context.Cause(ctx), ErrRestart) {
			return ErrRestart
		}
		return err
	case <-timer.C:
		return fmt.Errorf("shutdown timed out after %s; still running: %s", a.cfg.Supervisor.ShutdownTimeout, strings.Join(sup.Stuck(), ", "))
	}
}

// components binds the agent's own listeners and lists every component in
// start order: the admin API and metrics first, then the keystore watcher,
// the update channel, the control-plane link, the client API (which asks
// the control plane's authorizer) and the event link, which is built from the two before it (credentials and reports
// from the control plane, update checks from the update channel). When
// one fails to build, the listeners already bound are closed.
func (a *Agent) components() ([]supervisor.Spec, error) {
	var specs []supervisor.Spec
	built := false
	defer func() {
		if !built {
			closeListeners(specs) // bound by components, served by no one
		}
	}()
	adminLog := a.log.With(LogKeyComponent, "admin")
	adminLn, err := listenAdmin(a.cfg.Admin)
	if err != nil {
		return nil, err
	}
	gate := newPeerGate(a.cfg.Admin, adminLog)
	specs = []supervisor.Spec{{
		Name:         "admin",
		SignalsReady: true,
		Runner: &httpComponent{
			name: "admin", log: adminLog, ready: a.readyFunc("admin"), handler: gate.handler(a.adminHandler()), connContext: gate.connContext, first: adminLn,
			listen: func() (net.Listener, error) { return listenAdmin(a.cfg.Admin) },
		},
	}}
	if config.IsEnabled(a.cfg.Metrics.Enabled, true) {
		metricsLog := a.log.With(LogKeyComponent, "metrics")
		listen := func() (net.Listener, error) {
			ln, err := net.Listen("tcp", a.cfg.Metrics.Listen)
			if err != nil {
				return nil, fmt.Errorf("metrics: listen %s: %w", a.cfg.Metrics.Listen, err)
			}
			addr := ln.Addr().String()
			a.metricsAddr.Store(&addr)
			return ln, nil
		}
		ln, err := listen()
		if err != nil {
			return nil, err
		}
		specs = append(specs, supervisor.Spec{
			Name:         "metrics",
			SignalsReady: true,
			Runner:       &httpComponent{name: "metrics", log: metricsLog, ready: a.readyFunc("metrics"), handler: metricsHandler(a.reg, metricsLog), first: ln, listen: listen},
		})
	}
	specs = append(specs, supervisor.Spec{
		Name:   "keystore",
		Runner: &keystore.ExpiryWatcher{Manager: a.keystores.Stores},
	})
	upd, err := a.updateComponents()
	if err != nil {
		return nil, err
	}
	specs = append(specs, updateSpecs(upd)...)
	cl, err := a.cloudComponents()
	if err != nil {
		return nil, err
	}
	specs = append(specs, cloudSpecs(cl)...)
	ca, err := a.clientComponents(cl)
	if err != nil {
		return nil, err
	}
	specs = append(specs, ca...)
	il, err := a.iotComponents(upd, cl)
	if err != nil {
		return nil, err
	}
	specs = append(specs, iotSpecs(il)...)
	a.links.Store(&links{updates: upd, cloud: cl, iot: il})
	specs = append(specs, faultComponents...)
	built = true
	return append(specs, a.extra...), nil
}

// readyFunc returns the func the named component calls once it can serve:
// components report readiness through their own options and so import
// nothing of the supervisor.
func (a *Agent) readyFunc(name string) func() {
	return func() {
		if sup := a.sup.Load(); sup != nil {
			sup.MarkReady(name)
		}
	}
}

// faultComponents are added by fault-injection builds only (build tags
// edgefort_fault_*); release builds leave it empty.
var faultComponents []supervisor.Spec

// Status reports the agent and its components.
func (a *Agent) Status() adminapi.Status {
	st := adminapi.Status{
		Version:  a.build.Version,
		Commit:   a.build.Commit,
		PID:      os.Getpid(),
		Started:  a.started,
		StateDir: a.cfg.StateDir,
	}
	if addr := a.metricsAddr.Load(); addr != nil {
		st.MetricsURL = "http://" + *addr + "/metrics"
	}
	if sup := a.sup.Load(); sup != nil {
		for _, c := range sup.Status() {
			st.Components = append(st.Components, adminapi.Component{
				Name: c.Name, State: string(c.State), Since: c.Since, Restarts: c.Restarts,
				LastError: c.LastError, LastErrorAt: c.LastErrorAt, NextStart: c.NextStart,
			})
		}
		st.Ready = sup.Ready()
		st.CertificateWarnings = certificateWarnings(a.keystores.Stores)
	}
	if srv := a.clients.Load(); srv != nil {
		st.VirtualHosts = srv.URLs()
	}
	if api := a.authAPI.Load(); api != nil && api.Addr() != "" {
		st.AuthAPI = "https://" + api.Addr()
	}
	a.links.Load().status(a, &st)
	return st
}

// Ready reports whether every component is running.
func (a *Agent) Ready() bool {
	sup := a.sup.Load()
	return sup != nil && sup.Ready()
}

func sortProblems(ps []config.Problem) []config.Problem {
	slices.SortFunc(ps, func(a, b config.Problem) int {
		return cmp.Or(a.Line-b.Line, strings.Compare(a.Field, b.Field))
	})
	return ps
}
