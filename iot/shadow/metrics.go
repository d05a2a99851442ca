package shadow

import (
	"errors"

	"github.com/edgefort/edgefort/internal/prom"
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
	updates  *prom.CounterVec
	deltas   prom.Counter
	settings *prom.CounterVec
	version  prom.Gauge
}

func newMetrics(reg prom.Registerer) (*metrics, error) {
	m := &metrics{
		updates: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_iot_shadow_updates_total",
			Help: "Reported-state updates sent to the Device Shadow, by result (accepted, conflict, rejected, failed).",
		}, []string{"result"}),
		deltas: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_shadow_deltas_total",
			Help: "Shadow deltas acted on (update/delta and the delta in get/accepted).",
		}),
		settings: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_iot_shadow_settings_total",
			Help: "Desired settings handled, by setting (\"unknown\" for unsupported keys) and result (applied, invalid, unsupported).",
		}, []string{"setting", "result"}),
		version: prom.NewGauge(prom.GaugeOpts{
			Name: "edgefort_iot_shadow_version",
			Help: "Last known version of the thing's Device Shadow.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prom.Collector{m.updates, m.deltas, m.settings, m.version} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
