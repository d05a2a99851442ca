package jobs

import (
	"errors"

	"github.com/edgefort/edgefort/internal/prom"
)

type metrics struct {
	started        prom.Counter
	completed      *prom.CounterVec
	running        prom.Gauge
	malformed      prom.Counter
	handlerSeconds prom.Histogram
}

func newMetrics(reg prom.Registerer) (*metrics, error) {
	m := &metrics{
		started: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_jobs_started_total",
			Help: "Job executions claimed.",
		}),
		completed: prom.NewCounterVec(prom.CounterOpts{
			Name: "edgefort_iot_jobs_completed_total",
			Help: "Job executions whose final status the service accepted, by status.",
		}, []string{"status"}),
		running: prom.NewGauge(prom.GaugeOpts{
			Name: "edgefort_iot_jobs_running",
			Help: "1 while a job execution is in progress.",
		}),
		malformed: prom.NewCounter(prom.CounterOpts{
			Name: "edgefort_iot_jobs_malformed_total",
			Help: "Jobs messages that did not decode.",
		}),
		handlerSeconds: prom.NewHistogram(prom.HistogramOpts{
			Name:    "edgefort_iot_jobs_handler_seconds",
			Help:    "Duration of job handler runs.",
			Buckets: prom.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prom.Collector{m.started, m.completed, m.running, m.malformed, m.handlerSeconds} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
