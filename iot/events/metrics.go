package events

import (
	"errors"
	"fmt"

	"github.com/edgefort/edgefort/internal/prom"
)

// Outcomes in edgefort_iot_events_total, beside the Result statuses.
const (
	outcomeDuplicate = "duplicate" // already handled: acknowledged, nothing run
	outcomeRetry     = "retry"     // handler error: left for redelivery
)

// metrics are the dispatcher's Prometheus metrics.
type metrics struct {
	events         *prom.CounterVec
	malformed      prom.Counter
	reportFailures prom.Counter
	handlerSeconds prom.Histogram
}

func newMetrics(reg prom.Registerer) (*metrics, error) {
	m := &metrics{
		events: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_iot_events_total",
			Help: "Cloud events by outcome: done, failed, rejected, duplicate, retry.",
		}, []string{"outcome"}),
		malformed: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_events_malformed_total",
			Help: "Cloud events that could not be parsed.",
		}),
		reportFailures: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_events_report_failures_total",
			Help: "Cloud event results the reporter refused.",
		}),
		handlerSeconds: prom.NewHistogram(prom.HistogramOpts{
			Name:    "edgefort_iot_events_handler_seconds",
			Help:    "Time cloud event handlers took.",
			Buckets: prom.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
	for _, o := range []string{StatusDone, StatusFailed, StatusRejected, outcomeDuplicate, outcomeRetry} {
		m.events.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prom.Collector{m.events, m.malformed, m.reportFailures, m.handlerSeconds} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) outcome(o string) { m.events.WithLabelValues(o).Inc() }
