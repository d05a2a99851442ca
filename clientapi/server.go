// Package clientapi owns the private-network HTTPS server that clients
// (browsers, a hub, an app viewer) talk to: one listener per virtual host,
// each with TLS from its SSL block (one-way or two-way) through the
// keystore, so that repointing a reference changes the certificate a
// virtual host serves at its next handshake.
//
// For now it serves only GET /healthz; authentication, authorization and
// proxying to target endpoints build on it.
package clientapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefort/edgefort/keystore"
)

// Server serves every configured virtual host.
type Server struct {
	// Ready, when set, is called from Run once every virtual host
	// serves: the owner wires it to its supervisor's readiness. Set it
	// before Run.
	Ready func()

	log   *slog.Logger
	hosts []*virtualHost
	// bound maps virtual host names to the addresses actually bound (a
	// configured port 0 becomes a real one); set by Run.
	bound atomic.Pointer[map[string]string]
}

type virtualHost struct {
	cfg VirtualHost
	tls *tls.Config // nil when TLS is off
}

// FieldError is a setting that cannot be used as it is, named by its
// configuration path so that the agent can place it in the file.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// New builds the TLS configuration of every virtual host, so that a store
// or reference that does not resolve fails at start with its name; it binds
// nothing.
func New(vhosts []VirtualHost, stores *keystore.Manager, log *slog.Logger) (*Server, error) {
	s := &Server{log: log}
	var errs []error
	for i, vh := range vhosts {
		h := &virtualHost{cfg: vh}
		if vh.SSL.Enabled != nil && *vh.SSL.Enabled {
			c, err := stores.ServerTLS(vh.SSL)
			if err != nil {
				errs = append(errs, &FieldError{Field: fmt.Sprintf("clients.virtual_hosts[%d].ssl", i), Err: err})
				continue
			}
			h.tls = c
			if vh.SSL.Keystore == "" {
				log.Warn("virtual host serves the BUILT-IN SELF-SIGNED certificate; clients will not trust it. Set ssl.keystore to a keystore or ref://reference",
					"virtual_host", vh.Name, "listen", vh.Listen)
			}
		} else {
			log.Warn("virtual host serves plain HTTP", "virtual_host", vh.Name, "listen", vh.Listen)
		}
		s.hosts = append(s.hosts, h)
	}
	return s, errors.Join(errs...)
}

// Run listens on every virtual host and serves until ctx ends. It signals
// ready once every listener is bound.
func (s *Server) Run(ctx context.Context) error {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, h := range s.hosts {
		ln, err := net.Listen("tcp", h.cfg.Listen)
		if err != nil {
			closeAll()
			return fmt.Errorf("virtual host %s: listen %s: %w", h.cfg.Name, h.cfg.Listen, err)
		}
		lns = append(lns, ln)
	}
	bound := map[string]string{}
	for i, h := range s.hosts {
		bound[h.cfg.Name] = lns[i].Addr().String()
	}
	s.bound.Store(&bound)
	servers := make([]*http.Server, len(s.hosts))
	errc := make(chan error, len(s.hosts))
	var wg sync.WaitGroup
	for i, h := range s.hosts {
		log := s.log.With("virtual_host", h.cfg.Name)
		srv := &http.Server{
			Handler:           h.handler(),
			TLSConfig:         h.tls,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			// Handshake failures (a refused client certificate, a scanner)
			// are worth seeing but not as errors.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelInfo),
		}
		servers[i] = srv
		ln := lns[i]
		if h.tls != nil {
			ln = tls.NewListener(ln, h.tls)
		}
		log.Info("virtual host listening", "addr", lns[i].Addr().String(), "tls", h.tls != nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("virtual host %s: %w", h.cfg.Name, err)
			}
		}()
	}
	if s.Ready != nil {
		s.Ready()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, srv := range servers {
		if srv.Shutdown(shutdownCtx) != nil {
			srv.Close()
		}
	}
	wg.Wait()
	return err
}

// URLs are the virtual hosts' base URLs by name, with the addresses
// actually bound once Run has bound them.
func (s *Server) URLs() map[string]string {
	bound := map[string]string{}
	if b := s.bound.Load(); b != nil {
		bound = *b
	}
	out := map[string]string{}
	for _, h := range s.hosts {
		addr, ok := bound[h.cfg.Name]
		if !ok {
			addr = h.cfg.Listen
		}
		scheme := "http"
		if h.tls != nil {
			scheme = "https"
		}
		out[h.cfg.Name] = scheme + "://" + addr
	}
	return out
}

func (h *virtualHost) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	if len(h.cfg.HostAliases) == 0 {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.answers(r.Host) {
			http.Error(w, "this virtual host does not serve "+r.Host, http.StatusMisdirectedRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// answers reports whether host (with or without a port) is one of the
// virtual host's aliases.
func (h *virtualHost) answers(host string) bool {
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	for _, a := range h.cfg.HostAliases {
		if strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}
