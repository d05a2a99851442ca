package clientapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
)

// group is one virtual host's listeners and servers while it runs. A
// reload that keeps its addresses swaps host; requests read it once each.
type group struct {
	host   atomic.Pointer[virtualHost]
	name   string
	addrs  []string // as bound (port 0 resolved)
	lns    []net.Listener
	srvs   []*http.Server
	ctx    context.Context // the base of every request; cancelled once drained, which ends upgraded (WebSocket) tunnels
	cancel context.CancelFunc
}

// bindGroup binds every address of h; on failure it releases the ones it
// bound.
func bindGroup(h *virtualHost) (*group, error) {
	g := &group{name: h.cfg.Name}
	g.host.Store(h)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	for _, addr := range h.cfg.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			g.closeListeners()
			g.cancel()
			return nil, fmt.Errorf("virtual host %s: listen %s: %w", h.cfg.Name, addr, err)
		}
		g.lns = append(g.lns, ln)
		g.addrs = append(g.addrs, ln.Addr().String())
		g.srvs = append(g.srvs, g.server(h))
	}
	return g, nil
}

// server is the http.Server of one listener; its settings come from the
// virtual host as bound (a reload that changes them re-binds).
func (g *group) server(h *virtualHost) *http.Server {
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.host.Load().ServeHTTP(w, r) }),
		ReadHeaderTimeout: h.cfg.Timeouts.ReadHeader,
		IdleTimeout:       h.cfg.Timeouts.Idle,
		MaxHeaderBytes:    h.cfg.Limits.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return g.ctx },
		// Handshake failures (a refused client certificate, a scanner)
		// are worth seeing but not as errors.
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelInfo),
	}
	if h.tls != nil && !containsH2(h.tls.NextProtos) {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	return srv
}

func containsH2(protos []string) bool {
	for _, p := range protos {
		if p == "h2" {
			return true
		}
	}
	return false
}

// serve serves listener i until the server shuts down.
func (g *group) serve(i int) error {
	ln := g.lns[i]
	if g.host.Load().tls != nil {
		// Each handshake takes the TLS settings of the host in force, so a
		// reload that changes them needs no new listener.
		ln = tls.NewListener(ln, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return g.host.Load().tls, nil
		}})
	}
	if err := g.srvs[i].Serve(ln); !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("virtual host %s: %w", g.name, err)
	}
	return nil
}

func (g *group) closeListeners() {
	for _, ln := range g.lns {
		ln.Close()
	}
}

// drain lets requests in flight finish within the drain time, then closes
// what is left, upgraded connections included.
func (g *group) drain() {
	h := g.host.Load()
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeouts.Drain)
	defer cancel()
	for _, srv := range g.srvs {
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}
	g.cancel()
	h.log.Info("virtual host stopped", "addrs", g.addrs)
}
