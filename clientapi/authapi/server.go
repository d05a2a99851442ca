// Package authapi is the node's authentication API and the solutions that
// depend on it: a dedicated two-way TLS listener where authentication
// modules ask for single-use tickets (after Qlik's QPS ticket API) and
// portals register, validate and delete session tokens; the ticket
// solution that redeems a ticket presented in a query parameter; and the
// session-module solution that accepts the registered tokens from a
// cookie. Tickets and tokens are kept as SHA-256 hashes only and never
// logged.
package authapi

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
)

// Server limits of the listener: its requests are small JSON documents.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	drainTimeout      = 5 * time.Second
	// flushEvery is how often the sessions' last use reaches the state
	// store.
	flushEvery = time.Minute
)

// Deps are what the API needs from the rest of the process.
type Deps struct {
	// Keystores resolve the SSL block at every handshake. Required.
	Keystores *keystore.Manager
	// Logger receives one line per call, without tickets or session ids.
	// Nil discards.
	Logger *slog.Logger
	// Registerer receives the edgefort_authapi_* metrics. Nil keeps them
	// unregistered.
	Registerer prom.Registerer
	// Ready is called from Run once the listener is bound.
	Ready func()
	// Now is the clock of tickets and sessions. Nil means time.Now.
	Now func() time.Time
	// State keeps the registered sessions across restarts (bucket
	// authapi_sessions). Nil keeps them in memory only. Tickets always
	// live in memory: they last a minute.
	State *store.DB
}

// API is the authentication API component and the owner of the ticket and
// session stores its solutions read.
type API struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	tls      *tls.Config
	cns      map[string]bool
	tickets  *ticketStore
	sessions *sessionStore
	// validations are the portals' answers for session_module solutions
	// with a validation_url, dropped by DELETE /v1/sessions/{id}.
	validations *validationCache
	handler     http.Handler
	m           *metrics
	addr        atomic.Pointer[string]
	// policies are the redirect rules of the ticket solutions built on
	// this API, by virtual host (the latest build wins): a ticket's
	// target is checked against them when it is issued, so that no live
	// ticket is ever handed out for a foreign site.
	policies sync.Map // string -> *redirects
}

// New checks cfg (defaults filled where zero) and resolves its TLS block;
// it binds nothing.
func New(cfg Config, deps Deps) (*API, error) {
	cfg.SetDefaults()
	if cfg.Listen == "" {
		return nil, &auth.FieldError{Field: "listen", Err: errors.New("required")}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Keystores == nil {
		return nil, errors.New("authapi: no keystore manager")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsCfg, err := deps.Keystores.ServerTLS(cfg.SSL)
	if err != nil {
		return nil, fmt.Errorf("authapi: %w", err)
	}
	sessions, bad, err := newSessionStore(cfg.Sessions, deps.Now, deps.State)
	if err != nil {
		return nil, err
	}
	if bad > 0 {
		log.Warn("unreadable sessions in the state store were deleted; their users sign in again", "count", bad)
	}
	tlsCfg = tlsCfg.Clone()
	tlsCfg.NextProtos = []string{"h2", "http/1.1"}
	a := &API{cfg: cfg, deps: deps, log: log, tls: tlsCfg, cns: map[string]bool{},
		tickets:     newTicketStore(cfg.Tickets.TTL, cfg.Tickets.Max, deps.Now),
		sessions:    sessions,
		validations: &validationCache{now: deps.Now, m: map[[sha256.Size]byte]validated{}}}
	for _, cn := range cfg.AllowedCommonNames {
		a.cns[cn] = true
	}
	a.m = newMetrics(a)
	if deps.Registerer != nil {
		if err := a.m.register(deps.Registerer); err != nil {
			return nil, fmt.Errorf("authapi: register metrics: %w", err)
		}
	}
	a.handler = a.routes()
	return a, nil
}

// Addr is the bound address once Run has called Ready; "" before.
func (a *API) Addr() string {
	if p := a.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run binds the listener, calls Ready, and serves until ctx ends; then
// calls in flight get drainTimeout to finish.
func (a *API) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("authapi: listen %s: %w", a.cfg.Listen, err)
	}
	addr := ln.Addr().String()
	a.addr.Store(&addr)
	srv := &http.Server{
		Handler:           a.handler,
		TLSConfig:         a.tls,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Refused handshakes (no certificate, an untrusted one) are
		// worth seeing, not errors.
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelInfo),
	}
	a.log.Info("authentication API listening", "listen", addr)
	if a.deps.Ready != nil {
		a.deps.Ready()
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	for running := true; running; {
		select {
		case err := <-done:
			a.flush()
			return fmt.Errorf("authapi: serve %s: %w", addr, err)
		case <-flush.C:
			a.flush()
		case <-ctx.Done():
			running = false
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-done
	a.flush()
	return nil
}

// flush writes the sessions' last use; a failure is logged and retried at
// the next flush.
func (a *API) flush() {
	if err := a.sessions.flush(); err != nil {
		a.log.Warn("writing the sessions' last use failed", "error", err)
	}
}
