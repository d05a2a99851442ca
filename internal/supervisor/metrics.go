package supervisor

import (
	"fmt"

	"github.com/edgefort/edgefort/internal/prom"
)

// metrics are the supervisor's Prometheus collectors, labelled by component.
type metrics struct {
	restarts *prom.CounterVec
	failures *prom.CounterVec
	up       *prom.GaugeVec
}

// componentMetrics are one component's children of metrics.
type componentMetrics struct {
	restarts prom.Counter
	failures prom.Counter
	up       prom.Gauge
}

// newMetrics creates the collectors and registers them with reg, if not nil.
// On failure nothing stays registered.
func newMetrics(reg prom.Registerer) (*metrics, error) {
	labels := []string{"component"}
	m := &metrics{
		restarts: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_supervisor_component_restarts_total",
			Help: "Times a component was started again after a failure.",
		}, labels),
		failures: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_supervisor_component_failures_total",
			Help: "Times a component returned or panicked while it should have kept running.",
		}, labels),
		up: prom.NewGaugeVec(prom.GaugeOpts{
			Name: "edgefort_supervisor_component_up",
			Help: "1 when a component is running (and ready, if it signals readiness), else 0.",
		}, labels),
	}
	if reg == nil {
		return m, nil
	}
	var done []prom.Collector
	for _, c := range []prom.Collector{m.restarts, m.failures, m.up} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("supervisor: register metrics: %w", err)
		}
		done = append(done, c)
	}
	return m, nil
}

// forComponent returns the children for the named component, so that its
// series exist (at zero) from the start.
func (m *metrics) forComponent(name string) componentMetrics {
	return componentMetrics{
		restarts: m.restarts.WithLabelValues(name),
		failures: m.failures.WithLabelValues(name),
		up:       m.up.WithLabelValues(name),
	}
}
