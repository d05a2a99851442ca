package jobs

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	started        prometheus.Counter
	completed      *prometheus.CounterVec
	running        prometheus.Gauge
	malformed      prometheus.Counter
	handlerSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefort_iot_jobs_started_total",
			Help: "Job executions claimed.",
		}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgefort_iot_jobs_completed_total",
			Help: "Job executions whose final status the service accepted, by status.",
		}, []string{"status"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgefort_iot_jobs_running",
			Help: "1 while a job execution is in progress.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefort_iot_jobs_malformed_total",
			Help: "Jobs messages that did not decode.",
		}),
		handlerSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgefort_iot_jobs_handler_seconds",
			Help:    "Duration of job handler runs.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.started, m.completed, m.running, m.malformed, m.handlerSeconds} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}
