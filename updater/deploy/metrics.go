package deploy

import (
	"time"

	"github.com/edgefort/edgefort/internal/prom"
)

// Metrics are the update channel's Prometheus metrics. A nil *Metrics
// records nothing.
type Metrics struct {
	checks      *prom.CounterVec
	deployments *prom.CounterVec
	lastCheck   prom.Gauge
	deploying   prom.Gauge
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prom.Registerer) (*Metrics, error) {
	m := &Metrics{
		checks: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_updates_checks_total",
			Help: "Deployment checks against the update server, by result: none, deployment, error.",
		}, []string{"result"}),
		deployments: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_updates_deployments_total",
			Help: "Deployments run by this process, by outcome: success, failure, aborted, already-installed.",
		}, []string{"outcome"}),
		lastCheck: prom.NewGauge(prom.GaugeOpts{
			Name: "edgefort_updates_last_check_timestamp_seconds",
			Help: "When the update server was last asked for a deployment (Unix time).",
		}),
		deploying: prom.NewGauge(prom.GaugeOpts{
			Name: "edgefort_updates_deploying",
			Help: "1 while a deployment from the server is being installed.",
		}),
	}
	for _, c := range []prom.Collector{m.checks, m.deployments, m.lastCheck, m.deploying} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) check(result string, at time.Time) {
	if m == nil {
		return
	}
	m.checks.WithLabelValues(result).Inc()
	m.lastCheck.Set(float64(at.UnixNano()) / 1e9)
}

func (m *Metrics) deployment(o Outcome) {
	if m != nil {
		m.deployments.WithLabelValues(string(o)).Inc()
	}
}

func (m *Metrics) setDeploying(on bool) {
	if m == nil {
		return
	}
	if on {
		m.deploying.Set(1)
	} else {
		m.deploying.Set(0)
	}
}
