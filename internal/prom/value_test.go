package prom_test

import (
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
)

// TestConcurrentUpdatesAndScrapes: goroutines count, add, observe and
// create vector children while others scrape; no update is lost (run
// with -race).
func TestConcurrentUpdatesAndScrapes(t *testing.T) {
	const workers, rounds = 8, 2000
	reg := prom.NewRegistry()
	c := prom.NewCounter(prom.CounterOpts{Name: "c_total", Help: "C."})
	cv := prom.NewCounterVec(prom.CounterOpts{Name: "cv_total", Help: "CV."}, []string{"worker", "code"})
	g := prom.NewGauge(prom.GaugeOpts{Name: "g", Help: "G."})
	h := prom.NewHistogram(prom.HistogramOpts{Name: "h_seconds", Help: "H.", Buckets: []float64{1, 2}})
	reg.MustRegister(c, cv, g, h)
	handler := prom.Handler(reg, slog.New(slog.DiscardHandler))

	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan int)
	go func() {
		n := 0
		defer func() { scraped <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if rec.Code != 200 {
				t.Errorf("scrape status %d: %s", rec.Code, rec.Body)
				return
			}
			parse(t, io.NopCloser(rec.Body))
			n++
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				c.Inc()
				c.Add(0.5)
				cv.WithLabelValues(strconv.Itoa(w), strconv.Itoa(200+i%3)).Inc()
				g.Add(1)
				g.Sub(0.5)
				h.Observe(float64(i % 3)) // 0, 1, 2: buckets 1, 1, 2
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-scraped; n == 0 {
		t.Log("no scrape overlapped the updates")
	}
	total := float64(workers * rounds)
	if got := promtest.Value(t, reg, "c_total"); got != total*1.5 {
		t.Errorf("counter = %v, want %v", got, total*1.5)
	}
	if got := promtest.Value(t, reg, "g"); got != total*0.5 {
		t.Errorf("gauge = %v, want %v", got, total*0.5)
	}
	sum := 0.0
	for key, v := range promtest.Series(t, reg) {
		if len(key) > 8 && key[:8] == "cv_total" {
			sum += v
		}
	}
	if sum != total {
		t.Errorf("vector children sum to %v, want %v", sum, total)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.Name != "h_seconds" {
			continue
		}
		d := f.Series[0].Histogram
		third := uint64(workers * (rounds / 3)) // values 0 and 1 each once per 3 rounds (rounds%3 = 2 extra: 0, 1)
		if d.Count != uint64(total) || d.Buckets[0].CumulativeCount != 2*third+2*workers || d.Buckets[1].CumulativeCount != d.Count {
			t.Errorf("histogram count %d, buckets %+v", d.Count, d.Buckets)
		}
		if want := float64(workers * (rounds/3*3 + 1)); d.Sum != want {
			t.Errorf("histogram sum %v, want %v", d.Sum, want)
		}
	}
}

// TestHotPathAllocs: updating a metric, including through a vector's
// (curried) WithLabelValues once the child exists, allocates nothing.
func TestHotPathAllocs(t *testing.T) {
	c := prom.NewCounter(prom.CounterOpts{Name: "c_total"})
	g := prom.NewGauge(prom.GaugeOpts{Name: "g"})
	h := prom.NewHistogram(prom.HistogramOpts{Name: "h"})
	cv := prom.NewCounterVec(prom.CounterOpts{Name: "cv_total"}, []string{"a", "b", "c"})
	curried := cv.MustCurryWith(prom.Labels{"a": "hub", "b": "apps"})
	hv := prom.NewHistogramVec(prom.HistogramOpts{Name: "hv"}, []string{"a"})
	gv := prom.NewGaugeVec(prom.GaugeOpts{Name: "gv"}, []string{"a"})
	cv.WithLabelValues("hub", "apps", "200")
	hv.WithLabelValues("ok")
	gv.WithLabelValues("up")
	tests := []struct {
		name string
		fn   func()
	}{
		{"Counter.Inc", func() { c.Inc() }},
		{"Counter.Add", func() { c.Add(0.5) }},
		{"Gauge.Set", func() { g.Set(3) }},
		{"Gauge.Add", func() { g.Add(1) }},
		{"Histogram.Observe", func() { h.Observe(0.3) }},
		{"CounterVec.WithLabelValues.Inc", func() { cv.WithLabelValues("hub", "apps", "200").Inc() }},
		{"curried CounterVec.WithLabelValues.Inc", func() { curried.WithLabelValues("200").Inc() }},
		{"HistogramVec.WithLabelValues.Observe", func() { hv.WithLabelValues("ok").Observe(1) }},
		{"GaugeVec.WithLabelValues.Set", func() { gv.WithLabelValues("up").Set(1) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s: %v allocations, want 0", tt.name, n)
		}
	}
}

// TestCounterAdd: whole and fractional additions both count, past the
// float64 integer range too.
func TestCounterAdd(t *testing.T) {
	c := prom.NewCounter(prom.CounterOpts{Name: "c_total", Help: "C."})
	c.Add(2)
	c.Add(0.25)
	c.Inc()
	c.Add(1 << 60)
	c.Add(math.Inf(+1))
	if got := promtest.Read(c); !math.IsInf(got, +1) {
		t.Errorf("after +Inf: %v", got)
	}
	d := prom.NewCounter(prom.CounterOpts{Name: "d_total", Help: "D."})
	d.Add(2)
	d.Add(0.25)
	d.Inc()
	d.Add(1 << 60)
	if got, want := promtest.Read(d), float64(1<<60)+3.25; got != want {
		t.Errorf("counter = %v, want %v", got, want)
	}
}
