package cloudclient

import (
	"errors"

	"github.com/edgefort/edgefort/internal/prom"
)

// authzMetrics are the Authorizer's metrics.
type authzMetrics struct {
	decisions   *prom.CounterVec // source, allow
	denials     *prom.CounterVec // source
	staleServes prom.Counter
	entries     prom.Gauge
	evictions   prom.Counter
	calls       *prom.CounterVec // result: ok, unavailable, error
	latency     prom.Histogram
}

func newAuthzMetrics() *authzMetrics {
	const ns, sub = "edgefort", "cloud_authz"
	return &authzMetrics{
		decisions: prom.NewCounterVec(prom.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "decisions_total",
			Help: "Authorization decisions by source (cloud, cache, stale, unreachable, error) and outcome; source=cache counts cache hits.",
		}, []string{"source", "allow"}),
		denials: prom.NewCounterVec(prom.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "denials_total",
			Help: "Authorization denials by source.",
		}, []string{"source"}),
		staleServes: prom.NewCounter(prom.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "stale_serves_total",
			Help: "Expired decisions served because the control plane was unreachable (serve_stale).",
		}),
		entries: prom.NewGauge(prom.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "cache_entries",
			Help: "Decisions in the cache, expired ones kept for serve_stale included.",
		}),
		evictions: prom.NewCounter(prom.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cache_evictions_total",
			Help: "Decisions evicted from the full cache, least recently used first.",
		}),
		calls: prom.NewCounterVec(prom.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cloud_calls_total",
			Help: "Authorize calls to the control plane (cache misses, one per concurrent group) by result.",
		}, []string{"result"}),
		latency: prom.NewHistogram(prom.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "cloud_latency_seconds",
			Help:    "Duration of authorize calls to the control plane, retries included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
}

func (m *authzMetrics) register(r prom.Registerer) error {
	var errs []error
	for _, c := range []prom.Collector{m.decisions, m.denials, m.staleServes, m.entries, m.evictions, m.calls, m.latency} {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
