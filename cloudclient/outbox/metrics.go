package outbox

import (
	"fmt"

	"github.com/edgefort/edgefort/internal/prom"
)

// Reasons in edgefort_cloud_outbox_dropped_total.
const (
	dropFullLow     = "full_low"    // the oldest low-priority item, to make room
	dropFullHigh    = "full_high"   // the oldest high-priority item, when no low one was queued
	dropUndecodable = "undecodable" // a stored item that no longer decodes
	dropRefused     = "refused"     // the control plane refuses the item on its own (400, 413)
)

type metrics struct {
	queued       prom.Gauge
	sent         prom.Counter
	dropped      *prom.CounterVec
	rejected     prom.Counter
	sendFailures prom.Counter
}

// newMetrics creates the collectors and registers them with reg, if not nil.
// On failure nothing stays registered.
func newMetrics(reg prom.Registerer) (*metrics, error) {
	m := &metrics{
		queued: prom.NewGauge(prom.GaugeOpts{
			Name: "edgefort_cloud_outbox_queued",
			Help: "Reports and updates waiting in the outbox.",
		}),
		sent: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_cloud_outbox_sent_total",
			Help: "Outbox items the control plane acknowledged.",
		}),
		dropped: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_cloud_outbox_dropped_total",
			Help: "Outbox items dropped before delivery, by reason.",
		}, []string{"reason"}),
		rejected: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_cloud_outbox_rejected_total",
			Help: "Outbox items the control plane rejected for good.",
		}),
		sendFailures: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_cloud_outbox_send_failures_total",
			Help: "Batches that failed to send, or whose answer settled no item.",
		}),
	}
	for _, r := range []string{dropFullLow, dropFullHigh, dropUndecodable, dropRefused} {
		m.dropped.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var done []prom.Collector
	for _, c := range []prom.Collector{m.queued, m.sent, m.dropped, m.rejected, m.sendFailures} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		done = append(done, c)
	}
	return m, nil
}
