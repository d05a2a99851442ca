package clientapi

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client API's counters; one set per Server, shared by
// every virtual host and kept across reloads.
type metrics struct {
	auth     *prometheus.CounterVec   // virtual_host, solution, result
	requests *prometheus.CounterVec   // virtual_host, route, code
	latency  *prometheus.HistogramVec // virtual_host, route
}

func newMetrics() *metrics {
	return &metrics{
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefort_clientapi_auth_total",
			Help: "Authentication decisions by virtual host, solution and result (authenticated, refused, no_credentials, rate_limited).",
		}, []string{"virtual_host", "solution", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefort_clientapi_requests_total",
			Help: "Requests to routes by virtual host, route and status code.",
		}, []string{"virtual_host", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "edgefort_clientapi_request_duration_seconds",
			Help:    "Time to the end of a route's response (authentication, authorization and proxying), by virtual host and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"virtual_host", "route"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.auth, m.requests, m.latency} {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
