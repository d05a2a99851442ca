package authapi

import (
	"errors"
	"strconv"

	"github.com/edgefort/edgefort/internal/prom"
)

// metrics count the API's calls and what the stores hold.
type metrics struct {
	calls    *prom.CounterVec // route, code
	tickets  prom.GaugeFunc
	sessions prom.GaugeFunc
}

func newMetrics(a *API) *metrics {
	return &metrics{
		calls: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_authapi_requests_total",
			Help: "Calls to the authentication API by route and status code (403: a client certificate outside allowed_common_names).",
		}, []string{"route", "code"}),
		tickets: prom.NewGaugeFunc(prom.GaugeOpts{
			Name: "edgefort_authapi_tickets",
			Help: "Tickets held: outstanding, used or expired until swept.",
		}, func() float64 { return float64(a.tickets.len()) }),
		sessions: prom.NewGaugeFunc(prom.GaugeOpts{
			Name: "edgefort_authapi_sessions",
			Help: "Portal-registered sessions held.",
		}, func() float64 { return float64(a.sessions.len()) }),
	}
}

func (m *metrics) register(r prom.Registerer) error {
	var errs []error
	for _, c := range []prom.Collector{m.calls, m.tickets, m.sessions} {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *metrics) call(route string, code int) {
	m.calls.WithLabelValues(route, strconv.Itoa(code)).Inc()
}
