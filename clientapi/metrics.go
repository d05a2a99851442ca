package clientapi

import (
	"errors"

	"github.com/edgefort/edgefort/internal/prom"
)

// metrics are the client API's counters; one set per Server, shared by
// every virtual host and kept across reloads.
type metrics struct {
	auth     *prom.CounterVec   // virtual_host, solution, result
	requests *prom.CounterVec   // virtual_host, route, code
	latency  *prom.HistogramVec // virtual_host, route
}

func newMetrics() *metrics {
	return &metrics{
		auth: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_clientapi_auth_total",
			Help: "Authentication decisions by virtual host, solution and result (authenticated, refused, no_credentials, rate_limited).",
		}, []string{"virtual_host", "solution", "result"}),
		requests: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_clientapi_requests_total",
			Help: "Requests to routes by virtual host, route and status code.",
		}, []string{"virtual_host", "route", "code"}),
		latency: prom.NewHistogramVec(prom.HistogramOpts{
			Name:    "edgefort_clientapi_request_duration_seconds",
			Help:    "Time to the end of a route's response (authentication, authorization and proxying), by virtual host and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"virtual_host", "route"}),
	}
}

func (m *metrics) register(r prom.Registerer) error {
	var errs []error
	for _, c := range []prom.Collector{m.auth, m.requests, m.latency} {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
