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
// its error is returned and onReady is not called.
func (s *Stack) RunAgent(ctx context.Context, log *slog.Logger, level *slog.LevelVar, onReady func(*agent.Agent)) error {
	// As edgefort run: what the agent creates is private to its user.
	syscall.Umask(0o077)
	for _, w := range s.Config.Warnings() {
		log.Warn("configuration weakens the node", "file", w.File, "line", w.Line, "field", w.Field, "warning", w.Message)
	}
	a, err := agent.New(s.Config, log, agent.Build())
	if err != nil {
		return err
	}
	a.SetLevelVar(level)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !a.Ready() {
		select {
		case err := <-done:
			return err
		case <-tick.C:
		}
	}
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
	onReady(a)
	return <-done
}
