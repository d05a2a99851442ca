// Package clientapi owns the private-network HTTPS server that clients
// (browsers, a hub, an app viewer) talk to: virtual hosts bound to their
// configured addresses with TLS from their SSL blocks, routes that lead to
// local target endpoints through a streaming reverse proxy, the ordered
// chain of authentication solutions each virtual host runs, authorization
// of every routed request through an Authorizer the owner supplies, the
// identity backends receive, and the audit log and metrics of it all.
//
// The configuration reloads without a restart: Reload builds the new set
// completely, keeps the old one when it is invalid, swaps the handlers of
// virtual hosts whose listeners stay, and drains the ones removed.
package clientapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgefort/edgefort/clientapi/session"
)

// Server serves every configured virtual host.
type Server struct {
	deps     Deps
	log      *slog.Logger
	m        *metrics
	sessions *session.Store // nil without Deps.Store

	mu      sync.Mutex        // guards the fields below
	hosts   []*virtualHost    // the configuration in force, in order
	groups  map[string]*group // by virtual host name, while Run serves
	serving bool
	errc    chan error     // a listener that failed, while Run serves
	wg      sync.WaitGroup // serving and draining goroutines; waited for by Run
}

// FieldError is a setting that cannot be used as it is, named by its
// configuration path so that the agent can place it in the file.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// New builds every virtual host (TLS, solutions, routes, targets), so that
// a store, reference or setting that does not work fails at start with its
// name (a *FieldError each, joined); it binds nothing.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Keystores == nil {
		return nil, errors.New("clientapi: keystores are required")
	}
	s := &Server{deps: deps, log: deps.Logger, m: newMetrics()}
	if deps.Store != nil {
		opts := deps.Sessions
		if opts.Now == nil {
			opts.Now = deps.Now
		}
		if opts.Logger == nil {
			opts.Logger = deps.Logger.With("component", "sessions")
		}
		st, err := session.Open(deps.Store, opts)
		if err != nil {
			return nil, fmt.Errorf("clientapi: %w", err)
		}
		s.sessions = st
	}
	hosts, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	if deps.Registerer != nil {
		if err := s.m.register(deps.Registerer); err != nil {
			return nil, fmt.Errorf("clientapi: metrics: %w", err)
		}
	}
	s.hosts = hosts
	return s, nil
}

// build builds a whole configuration, or reports every problem in it.
func (s *Server) build(cfg Config) ([]*virtualHost, error) {
	b := &builder{deps: s.deps, m: s.m, log: s.log, targets: map[string]*target{}, sessions: s.sessions}
	for _, vh := range cfg.VirtualHosts {
		b.ownHosts = append(append(b.ownHosts, vh.HostAliases...), vh.Listen...)
	}
	var errs []error
	for i, t := range cfg.TargetEndpoints {
		if _, dup := b.targets[t.Name]; dup {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("clients.target_endpoints[%d].name", i), Err: fmt.Errorf("%q is used twice", t.Name)})
			continue
		}
		bt, err := buildTarget(t, s.deps.Keystores)
		if err != nil {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("clients.target_endpoints[%d]", i), Err: err})
			continue
		}
		b.targets[t.Name] = bt
	}
	var hosts []*virtualHost
	names := map[string]bool{}
	for i, vh := range cfg.VirtualHosts {
		if names[vh.Name] {
			errs = append(errs, fieldErr(i, "name", fmt.Errorf("%q is used twice", vh.Name)))
		}
		names[vh.Name] = true
		h, herrs := b.host(i, vh)
		errs = append(errs, herrs...)
		hosts = append(hosts, h)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if testHook != nil {
		testHook(hosts)
	}
	return hosts, nil
}

// testHook, set by tests only, adjusts every built set (a test solution in
// each chain).
var testHook func([]*virtualHost)

// Run binds every virtual host and serves until ctx ends, then drains
// them: requests in flight get each virtual host's drain time. A failed
// bind releases what was bound and fails Run.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("clientapi: already running")
	}
	groups := map[string]*group{}
	for _, h := range s.hosts {
		g, err := bindGroup(h)
		if err != nil {
			for _, g := range groups {
				g.closeListeners()
			}
			s.mu.Unlock()
			return err
		}
		groups[h.cfg.Name] = g
	}
	s.groups, s.serving, s.errc = groups, true, make(chan error, 1)
	for _, g := range groups {
		s.serveLocked(g)
	}
	errc := s.errc
	s.mu.Unlock()
	stopSessions := s.runSessions()
	defer stopSessions()
	if s.deps.Ready != nil {
		s.deps.Ready()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.mu.Lock()
	for _, g := range s.groups {
		s.drainLocked(g)
	}
	s.groups, s.serving = nil, false
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// runSessions runs the session store's writer until the returned func,
// which Run calls once every request has drained, so that the last
// last-seen times are written.
func (s *Server) runSessions() (stop func()) {
	if s.sessions == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.sessions.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Sessions is the node's session store (for the admin API), nil when the
// server has no state store.
func (s *Server) Sessions() *session.Store { return s.sessions }

// serveLocked starts serving g's listeners.
func (s *Server) serveLocked(g *group) {
	for i := range g.srvs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := g.serve(i); err != nil {
				select {
				case s.errc <- err:
				default:
				}
			}
		}()
	}
	g.host.Load().log.Info("virtual host listening", "addrs", g.addrs, "tls", g.host.Load().tls != nil)
}

// drainLocked stops g in the background, within its drain time.
func (s *Server) drainLocked(g *group) {
	g.closeListeners()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		g.drain()
	}()
}

// Reload replaces the configuration without a restart. The new set is
// built completely first; when it is invalid the old one stays and the
// error says why (joined *FieldError, as from New). While Run serves, virtual hosts whose listeners stay the
// same get the new handlers at once (open connections go on), removed or
// re-bound ones are drained, new ones are bound.
func (s *Server) Reload(cfg Config) error {
	hosts, err := s.build(cfg)
	if err != nil {
		return err // every problem a *FieldError, for the owner to place
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.hosts
	s.hosts = hosts
	defer func() {
		for _, h := range old {
			h.closeIdle()
		}
	}()
	if !s.serving {
		return nil
	}
	next := map[string]*group{}
	var fresh []*virtualHost
	for _, h := range hosts {
		if g, ok := s.groups[h.cfg.Name]; ok && sameListen(g.host.Load(), h) {
			g.host.Store(h)
			next[h.cfg.Name] = g
			delete(s.groups, h.cfg.Name)
			continue
		}
		fresh = append(fresh, h)
	}
	for _, g := range s.groups {
		s.drainLocked(g) // removed or re-bound: free its addresses first
	}
	s.groups = next
	var errs []error
	for _, h := range fresh {
		g, err := bindGroup(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next[h.cfg.Name] = g
		s.serveLocked(g)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clientapi: reload: %w", err)
	}
	s.log.Info("client API reloaded", "virtual_hosts", len(hosts))
	return nil
}

// URLs are the virtual hosts' base URLs by name (their first address),
// with the addresses actually bound while Run serves.
func (s *Server) URLs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, h := range s.hosts {
		addr := ""
		if len(h.cfg.Listen) > 0 {
			addr = h.cfg.Listen[0]
		}
		if g, ok := s.groups[h.cfg.Name]; ok && len(g.addrs) > 0 {
			addr = g.addrs[0]
		}
		scheme := "http"
		if h.tls != nil {
			scheme = "https"
		}
		out[h.cfg.Name] = scheme + "://" + addr
	}
	return out
}
