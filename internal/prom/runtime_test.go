package prom_test

import (
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/prom"
)

// TestRuntimeCollectors: the Go and process metrics dashboards expect
// are there under client_golang's names and types, with plausible
// values, and parse with expfmt (go_gc_duration_seconds is a summary).
func TestRuntimeCollectors(t *testing.T) {
	reg := prom.NewPedanticRegistry()
	reg.MustRegister(prom.NewGoCollector(), prom.NewProcessCollector())
	runtime.GC()
	fams := parse(t, scrape(t, prom.Handler(reg, slog.New(slog.DiscardHandler)), nil).Body)
	value := func(name string) float64 {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) != 1 {
			t.Errorf("%s: missing", name)
			return 0
		}
		m := f.GetMetric()[0]
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Summary != nil:
			return float64(m.GetSummary().GetSampleCount())
		}
		t.Errorf("%s: type %v", name, f.GetType())
		return 0
	}
	types := map[string]string{
		"go_goroutines": "GAUGE", "go_threads": "GAUGE", "go_info": "GAUGE", "go_gc_duration_seconds": "SUMMARY",
		"go_memstats_alloc_bytes": "GAUGE", "go_memstats_alloc_bytes_total": "COUNTER", "go_memstats_sys_bytes": "GAUGE",
		"go_memstats_heap_inuse_bytes": "GAUGE", "go_memstats_mallocs_total": "COUNTER", "go_memstats_frees_total": "COUNTER",
		"go_memstats_next_gc_bytes": "GAUGE", "go_memstats_last_gc_time_seconds": "GAUGE", "go_sched_gomaxprocs_threads": "GAUGE",
	}
	if runtime.GOOS == "linux" {
		for _, n := range []string{"process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds", "process_virtual_memory_max_bytes"} {
			types[n] = "GAUGE"
		}
		types["process_cpu_seconds_total"] = "COUNTER"
	}
	for name, typ := range types {
		if got := fams[name].GetType().String(); got != typ {
			t.Errorf("%s: type %s, want %s", name, got, typ)
		}
	}
	if g := value("go_goroutines"); g < 1 {
		t.Errorf("go_goroutines = %v", g)
	}
	if v := value("go_gc_duration_seconds"); v < 1 {
		t.Errorf("go_gc_duration_seconds count = %v after a GC", v)
	}
	if v := value("go_memstats_last_gc_time_seconds"); time.Since(time.Unix(int64(v), 0)) > time.Hour {
		t.Errorf("go_memstats_last_gc_time_seconds = %v", v)
	}
	if got := fams["go_info"].GetMetric()[0].GetLabel()[0].GetValue(); got != runtime.Version() {
		t.Errorf("go_info version %q", got)
	}
	if runtime.GOOS != "linux" {
		return
	}
	if rss := value("process_resident_memory_bytes"); rss < 1<<20 || rss > 1<<40 {
		t.Errorf("process_resident_memory_bytes = %v", rss)
	}
	start := time.Unix(int64(value("process_start_time_seconds")), 0)
	if age := time.Since(start); age < -2*time.Second || age > 24*time.Hour {
		t.Errorf("process_start_time_seconds = %v (%v ago)", start, age)
	}
	if v := value("process_open_fds"); v < 3 { // stdin, stdout, stderr at least
		t.Errorf("process_open_fds = %v", v)
	}
	if v := value("process_max_fds"); v < 1 && v != -1 {
		t.Errorf("process_max_fds = %v", v)
	}
}
