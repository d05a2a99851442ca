package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
)

// newRegistry makes the agent's own registry (never the global one, so
// tests and a second agent in one process each get theirs) with the Go
// runtime and process collectors and the build info.
func newRegistry(info BuildInfo) *prom.Registry {
	reg := prom.NewRegistry()
	reg.MustRegister(
		prom.NewGoCollector(),
		prom.NewProcessCollector(),
		prom.NewGaugeFunc(prom.GaugeOpts{
			Name:        "edgefort_agent_build_info",
			Help:        "Build of the running agent; always 1.",
			ConstLabels: prom.Labels{"version": info.Version, "commit": info.Commit, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)
	return reg
}

// httpComponent serves one HTTP handler as a supervised component. Its
// first listener is bound before the supervisor starts, so that a busy port
// or a bad path fails `edgefort run` at once instead of restarting forever;
// after a failure Run binds again.
type httpComponent struct {
	name    string
	log     *slog.Logger
	handler http.Handler
	listen  func() (net.Listener, error)
	// connContext, if set, is the server's ConnContext (the admin API's
	// peer gate reads the caller's credentials there).
	connContext func(context.Context, net.Conn) context.Context
	ready       func()       // marks the component ready once it serves
	first       net.Listener // taken by the first Run; guarded by being used only from Run, which the supervisor never runs twice at once
}

func (h *httpComponent) Run(ctx context.Context) error {
	ln := h.first
	h.first = nil
	if ln == nil {
		var err error
		if ln, err = h.listen(); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           h.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		ConnContext:       h.connContext,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	h.log.Info("listening", "addr", ln.Addr().String())
	h.ready()
	select {
	case err := <-served:
		return fmt.Errorf("%s: serve: %w", h.name, err)
	case <-ctx.Done():
	}
	// Local scrapes and status calls are short; a second is plenty and
	// keeps the whole shutdown inside its bound.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: serve: %w", h.name, err)
	}
	return nil
}

// metricsHandler serves reg in the Prometheus text format 0.0.4.
func metricsHandler(reg *prom.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", prom.Handler(reg, log))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "edgefort metrics: /metrics")
	})
	return mux
}
