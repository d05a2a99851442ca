package prom

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// goMetric is one Go runtime metric: its desc, type, and how to compute
// it from the runtime/metrics samples (indexed as goSampleNames).
type goMetric struct {
	desc  *Desc
	vt    ValueType
	value func(v []float64) float64
}

// goSampleNames are the runtime/metrics read at each scrape; runtime/
// metrics needs no stop-the-world, unlike runtime.ReadMemStats.
var goSampleNames = []string{
	"/memory/classes/heap/objects:bytes",  // 0
	"/gc/heap/allocs:bytes",               // 1
	"/gc/heap/allocs:objects",             // 2
	"/gc/heap/tiny/allocs:objects",        // 3
	"/gc/heap/frees:objects",              // 4
	"/memory/classes/total:bytes",         // 5
	"/memory/classes/heap/unused:bytes",   // 6
	"/memory/classes/heap/released:bytes", // 7
	"/memory/classes/heap/free:bytes",     // 8
	"/gc/heap/objects:objects",            // 9
	"/memory/classes/heap/stacks:bytes",   // 10
	"/memory/classes/os-stacks:bytes",     // 11
	"/gc/heap/goal:bytes",                 // 12
	"/sched/goroutines:goroutines",        // 13
	"/sched/threads/total:threads",        // 14
	"/gc/gogc:percent",                    // 15
	"/gc/gomemlimit:bytes",                // 16
	"/sched/gomaxprocs:threads",           // 17
}

type goCollector struct {
	metrics []goMetric
	info    *Desc
	gc      *Desc
	lastGC  *Desc
}

// NewGoCollector returns a collector of the Go runtime's metrics under
// the names client_golang uses: go_goroutines, go_threads, go_info,
// go_gc_duration_seconds and the go_memstats_* basics, read at scrape
// time.
func NewGoCollector() Collector {
	g := func(name, help string, fn func(v []float64) float64) goMetric {
		return goMetric{desc: NewDesc(name, help, nil, nil), vt: GaugeValue, value: fn}
	}
	c := func(name, help string, fn func(v []float64) float64) goMetric {
		return goMetric{desc: NewDesc(name, help, nil, nil), vt: CounterValue, value: fn}
	}
	at := func(i int) func(v []float64) float64 { return func(v []float64) float64 { return v[i] } }
	return &goCollector{
		metrics: []goMetric{
			g("go_memstats_alloc_bytes", "Bytes of allocated heap objects.", at(0)),
			c("go_memstats_alloc_bytes_total", "Bytes allocated in the heap, even if freed since.", at(1)),
			c("go_memstats_mallocs_total", "Heap objects allocated.", func(v []float64) float64 { return v[2] + v[3] }),
			c("go_memstats_frees_total", "Heap objects freed.", func(v []float64) float64 { return v[4] + v[3] }),
			g("go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", at(5)),
			g("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", at(0)),
			g("go_memstats_heap_sys_bytes", "Bytes of heap memory obtained from the OS.", func(v []float64) float64 { return v[0] + v[6] + v[7] + v[8] }),
			g("go_memstats_heap_idle_bytes", "Bytes in idle (unused) heap spans.", func(v []float64) float64 { return v[7] + v[8] }),
			g("go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans.", func(v []float64) float64 { return v[0] + v[6] }),
			g("go_memstats_heap_released_bytes", "Bytes of heap memory returned to the OS.", at(7)),
			g("go_memstats_heap_objects", "Allocated heap objects.", at(9)),
			g("go_memstats_stack_inuse_bytes", "Bytes in goroutine stack spans.", at(10)),
			g("go_memstats_stack_sys_bytes", "Bytes of stack memory obtained from the OS.", func(v []float64) float64 { return v[10] + v[11] }),
			g("go_memstats_next_gc_bytes", "Heap size the next garbage collection aims at.", at(12)),
			g("go_goroutines", "Goroutines that currently exist.", at(13)),
			g("go_threads", "OS threads the runtime created.", at(14)),
			g("go_gc_gogc_percent", "GOGC: the heap growth percentage that triggers a collection.", at(15)),
			g("go_gc_gomemlimit_bytes", "GOMEMLIMIT: the runtime's soft memory limit.", at(16)),
			g("go_sched_gomaxprocs_threads", "GOMAXPROCS: threads that may run Go code at once.", at(17)),
		},
		info:   NewDesc("go_info", "Go version the binary was built with.", nil, Labels{"version": runtime.Version()}),
		gc:     NewDesc("go_gc_duration_seconds", "Wall-clock pauses of garbage collections.", nil, nil),
		lastGC: NewDesc("go_memstats_last_gc_time_seconds", "Unix time of the last garbage collection.", nil, nil),
	}
}

func (c *goCollector) Describe(ch chan<- *Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
	ch <- c.info
	ch <- c.gc
	ch <- c.lastGC
}

func (c *goCollector) Collect(ch chan<- Metric) {
	samples := make([]metrics.Sample, len(goSampleNames))
	for i, name := range goSampleNames {
		samples[i].Name = name
	}
	metrics.Read(samples)
	v := make([]float64, len(samples))
	for i, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			v[i] = float64(s.Value.Uint64())
		case metrics.KindFloat64:
			v[i] = s.Value.Float64()
		}
	}
	for _, m := range c.metrics {
		ch <- MustNewConstMetric(m.desc, m.vt, m.value(v))
	}
	ch <- MustNewConstMetric(c.info, GaugeValue, 1)

	stats := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&stats)
	s := SummaryData{Count: uint64(stats.NumGC), Sum: stats.PauseTotal.Seconds()}
	for i, q := range []float64{0, 0.25, 0.5, 0.75, 1} {
		s.Quantiles = append(s.Quantiles, Quantile{Quantile: q, Value: stats.PauseQuantiles[i].Seconds()})
	}
	ch <- &constSummary{desc: c.gc, s: s}
	last := 0.0
	if !stats.LastGC.IsZero() {
		last = float64(stats.LastGC.UnixNano()) / 1e9
	}
	ch <- MustNewConstMetric(c.lastGC, GaugeValue, last)
}
