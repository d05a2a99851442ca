package iot

import (
	"errors"
	"fmt"

	"github.com/edgefort/edgefort/internal/prom"
)

// Reasons in edgefort_iot_publish_refused_total.
const (
	refusedTooLarge     = "too_large"
	refusedInvalidTopic = "invalid_topic"
	refusedNotConnected = "not_connected"
	refusedRateLimited  = "rate_limited"
	refusedFailed       = "failed"
)

// metrics are the link's Prometheus metrics.
type metrics struct {
	state          *prom.GaugeVec // 1 for the current state, 0 for the others
	reconnects     prom.Counter
	throttled      prom.Counter
	messagesIn     prom.Counter
	messagesOut    prom.Counter
	handlerSeconds *prom.HistogramVec
	publishRefused *prom.CounterVec
}

func newMetrics(reg prom.Registerer) (*metrics, error) {
	m := &metrics{
		state: prom.NewGaugeVec(prom.GaugeOpts{
			Name: "edgefort_iot_link_state",
			Help: "State of the AWS IoT event link: 1 for the current state.",
		}, []string{"state"}),
		reconnects: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_reconnects_total",
			Help: "Connection attempts after the first one.",
		}),
		throttled: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_connects_throttled_total",
			Help: "Connection attempts the service refused for its connect rate limits (the link then backs off further).",
		}),
		messagesIn: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_messages_in_total",
			Help: "MQTT messages received.",
		}),
		messagesOut: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_messages_out_total",
			Help: "MQTT messages published and acknowledged by the broker.",
		}),
		handlerSeconds: prom.NewHistogramVec(prom.HistogramOpts{
			Name:    "edgefort_iot_handler_seconds",
			Help:    "Time the message handler took, by result (ok, error).",
			Buckets: prom.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"result"}),
		publishRefused: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_iot_publish_refused_total",
			Help: "Publishes refused or failed, by reason.",
		}, []string{"reason"}),
	}
	for _, s := range []State{StateStopped, StateConnecting, StateConnected, StateBackingOff} {
		m.state.WithLabelValues(string(s))
	}
	for _, r := range []string{refusedTooLarge, refusedInvalidTopic, refusedNotConnected, refusedRateLimited, refusedFailed} {
		m.publishRefused.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prom.Collector{m.state, m.reconnects, m.throttled, m.messagesIn, m.messagesOut, m.handlerSeconds, m.publishRefused} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

// setState sets the gauge for s to 1 and the others to 0.
func (m *metrics) setState(s State) {
	for _, x := range []State{StateStopped, StateConnecting, StateConnected, StateBackingOff} {
		v := 0.0
		if x == s {
			v = 1
		}
		m.state.WithLabelValues(string(x)).Set(v)
	}
}
