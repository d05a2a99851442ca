package prom_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgefort/edgefort/internal/prom"
)

// The hot paths, ours beside client_golang's in the same run (the
// results are in docs/benchmarks.md). client_golang is a test-only
// dependency here; deps_test keeps it out of the product.

func BenchmarkCounterInc(b *testing.B) {
	b.Run("prom", func(b *testing.B) {
		c := prom.NewCounter(prom.CounterOpts{Name: "c_total", Help: "C."})
		b.ReportAllocs()
		for b.Loop() {
			c.Inc()
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "C."})
		b.ReportAllocs()
		for b.Loop() {
			c.Inc()
		}
	})
}

func BenchmarkCounterVecWithLabelValuesInc(b *testing.B) {
	b.Run("prom", func(b *testing.B) {
		v := prom.NewCounterVec(prom.CounterOpts{Name: "c_total", Help: "C."}, []string{"virtual_host", "route", "code"})
		b.ReportAllocs()
		for b.Loop() {
			v.WithLabelValues("hub", "apps", "200").Inc()
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "C."}, []string{"virtual_host", "route", "code"})
		b.ReportAllocs()
		for b.Loop() {
			v.WithLabelValues("hub", "apps", "200").Inc()
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60} // clientapi's
	b.Run("prom", func(b *testing.B) {
		h := prom.NewHistogram(prom.HistogramOpts{Name: "h_seconds", Help: "H.", Buckets: buckets})
		b.ReportAllocs()
		v := 0.0
		for b.Loop() {
			h.Observe(v)
			v += 0.0001
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "H.", Buckets: buckets})
		b.ReportAllocs()
		v := 0.0
		for b.Loop() {
			h.Observe(v)
			v += 0.0001
		}
	})
}

// BenchmarkCounterIncParallel: every core on one counter, the contended
// case of a busy proxy.
func BenchmarkCounterIncParallel(b *testing.B) {
	b.Run("prom", func(b *testing.B) {
		c := prom.NewCounter(prom.CounterOpts{Name: "c_total", Help: "C."})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "C."})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
			}
		})
	})
}
