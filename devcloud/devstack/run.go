package devstack

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/agent"
)

// RunAgent runs the agent on the stack's configuration until ctx ends and
// calls onReady once every component is up. If the agent stops first,
// its error is returned and onReady is not called. The agent's reboot
// command stops it; the simulated device boots and a new agent runs on
// the partition that came up (onReady is for the first boot only).
func (s *Stack) RunAgent(ctx context.Context, log *slog.Logger, level *slog.LevelVar, onReady func(*agent.Agent)) error {
	// As edgefort run: what the agent creates is private to its user.
	syscall.Umask(0o077)
	for _, w := range s.Config.Warnings() {
		log.Warn("configuration weakens the node", "file", w.File, "line", w.Line, "field", w.Field, "warning", w.Message)
	}
	for boot := 0; ; boot++ {
		if s.device != nil {
			part, err := s.device.boot(ctx, log.With(agent.LogKeyComponent, "device"))
			if err != nil {
				return err
			}
			s.booted.Store(&part)
		}
		ready := onReady
		if boot > 0 {
			ready = func(*agent.Agent) { log.Info("the agent runs again after the reboot", "boot", boot) }
		}
		rebooted, err := s.runAgentOnce(ctx, log, level, ready)
		if err != nil || !rebooted || ctx.Err() != nil {
			return err
		}
	}
}

// Booted is the partition file the simulated device booted last; empty
// before the first boot.
func (s *Stack) Booted() string {
	if p := s.booted.Load(); p != nil {
		return *p
	}
	return ""
}

// runAgentOnce runs one agent until ctx ends, it stops, or the device
// is asked to reboot (rebooted true: the agent was stopped for it).
func (s *Stack) runAgentOnce(ctx context.Context, log *slog.Logger, level *slog.LevelVar, onReady func(*agent.Agent)) (rebooted bool, err error) {
	a, err := agent.New(s.Config, log, agent.Build())
	if err != nil {
		return false, err
	}
	a.SetLevelVar(level)
	var reboots <-chan int // nil without a device: never ready
	if s.device != nil {
		a.SetRunningSystem(s.device.running())
		reboots = s.device.reboots
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	reboot := func(pid int) (bool, error) {
		waitRebootCommand(ctx, pid)
		log.Info("rebooting the simulated device: the agent stops")
		cancel()
		return true, <-done
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !a.Ready() {
		select {
		case err := <-done:
			return false, err
		case pid := <-reboots: // a rollback's reboot can come before readiness
			return reboot(pid)
		case <-tick.C:
		}
	}
	s.connectAgent(ctx, a, log)
	onReady(a)
	select {
	case err := <-done:
		return false, err
	case pid := <-reboots:
		return reboot(pid)
	}
}

// connectAgent tells the stack's servers where the agent listens: its
// ports are picked at each start.
func (s *Stack) connectAgent(ctx context.Context, a *agent.Agent, log *slog.Logger) {
	// The hub listens on a port picked at its start: only now can the
	// engine be told where the node's JWKS is.
	if hub := a.Status().VirtualHosts["hub"]; hub != "" && s.engine != nil {
		if err := s.engine.SetJWKSURL(hub + "/.well-known/jwks.json"); err != nil {
			log.Error("the engine cannot verify identity tokens", "error", err)
		}
	}
	// Likewise the auth API and the virtual hosts the module may send
	// browsers back to: it learns them before anyone is shown its URL.
	if st := a.Status(); st.AuthAPI != "" && s.module != nil {
		s.module.SetNode(st.AuthAPI, slices.Collect(maps.Values(st.VirtualHosts)))
	}
	// And the sso host's front door its target, and the SAML IdP the
	// node's SP metadata, before anyone is shown the login URLs.
	if s.idps != nil {
		if err := s.idps.connect(ctx, a.Status().VirtualHosts[SSOHost]); err != nil {
			log.Error("the dev IdPs cannot sign users in", "error", err)
		}
	}
}
