package shadow

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results in edgefort_iot_shadow_updates_total.
const (
	resultAccepted = "accepted"
	resultConflict = "conflict"
	resultRejected = "rejected"
	resultFailed   = "failed" // not published (link down, timeout) or no answer
)

// Results in edgefort_iot_shadow_settings_total.
const (
	settingApplied     = "applied"
	settingInvalid     = "invalid"
	settingUnsupported = "unsupported"
)

type metrics struct {
	updates  *prometheus.CounterVec
	deltas   prometheus.Counter
	settings *prometheus.CounterVec
	version  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefort_iot_shadow_updates_total",
			Help: "Reported-state updates sent to the Device Shadow, by result (accepted, conflict, rejected, failed).",
		}, []string{"result"}),
		deltas: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefort_iot_shadow_deltas_total",
			Help: "Shadow deltas acted on (update/delta and the delta in get/accepted).",
		}),
		settings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefort_iot_shadow_settings_total",
			Help: "Desired settings handled, by setting (\"unknown\" for unsupported keys) and result (applied, invalid, unsupported).",
		}, []string{"setting", "result"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgefort_iot_shadow_version",
			Help: "Last known version of the thing's Device Shadow.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.updates, m.deltas, m.settings, m.version} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
