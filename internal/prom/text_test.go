package prom_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgefort/edgefort/internal/prom"
)

// newExample registers one metric of every kind, with labels that need
// escaping, and gives each a known value.
func newExample(t *testing.T) *prom.Registry {
	t.Helper()
	reg := prom.NewPedanticRegistry()
	c := prom.NewCounter(prom.CounterOpts{Name: "ex_plain_total", Help: "A counter."})
	c.Inc()
	c.Add(2.5)
	cv := prom.NewCounterVec(prom.CounterOpts{Name: "ex_requests_total", Help: "Help with a \\ backslash\nand a newline.",
		ConstLabels: prom.Labels{"zone": "a"}}, []string{"route", "code"})
	cv.WithLabelValues("say \"hi\"\\\n", "200").Add(3)
	cv.WithLabelValues("plain", "500").Inc()
	g := prom.NewGauge(prom.GaugeOpts{Namespace: "ex", Subsystem: "queue", Name: "depth", Help: "A gauge."})
	g.Set(7)
	g.Dec()
	g.Sub(0.5)
	gv := prom.NewGaugeVec(prom.GaugeOpts{Name: "ex_state", Help: "A gauge vector."}, []string{"state"})
	gv.WithLabelValues("up").Set(1)
	gv.WithLabelValues("down").Set(math.Inf(-1))
	gf := prom.NewGaugeFunc(prom.GaugeOpts{Name: "ex_func", Help: "A gauge func."}, func() float64 { return 42 })
	h := prom.NewHistogram(prom.HistogramOpts{Name: "ex_seconds", Help: "A histogram.", Buckets: []float64{0.1, 1, 10}})
	for _, v := range []float64{0.05, 0.1, 0.5, 5, 50} {
		h.Observe(v)
	}
	hv := prom.NewHistogramVec(prom.HistogramOpts{Name: "ex_handler_seconds", Help: "A histogram vector.",
		Buckets: prom.ExponentialBuckets(0.001, 10, 3)}, []string{"result"})
	hv.WithLabelValues("ok").Observe(0.002)
	hv.WithLabelValues("error").Observe(20)
	reg.MustRegister(c, cv, g, gv, gf, h, hv, constCollector{})
	return reg
}

// constCollector is a custom collector reading its value at scrape time.
type constCollector struct{}

var constDesc = prom.NewDesc("ex_expiry_timestamp_seconds", "A const metric.", []string{"store", "alias"}, nil)

func (constCollector) Describe(ch chan<- *prom.Desc) { ch <- constDesc }
func (constCollector) Collect(ch chan<- prom.Metric) {
	ch <- prom.MustNewConstMetric(constDesc, prom.GaugeValue, 1.8e9, "main", "node")
	ch <- prom.MustNewConstMetric(constDesc, prom.GaugeValue, 1.7e9, "main", "ca")
}

func scrape(t *testing.T, h http.Handler, header http.Header) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequest("GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// parse reads an exposition with client_golang's own parser, independent
// of the writer under test.
func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("expfmt cannot parse the exposition: %v", err)
	}
	return fams
}

// sample is a parsed series in a comparable form.
type sample struct {
	Type    string
	Help    string
	Labels  map[string]string
	Value   float64
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

func flatten(fams map[string]*dto.MetricFamily) map[string][]sample {
	out := map[string][]sample{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := sample{Type: f.GetType().String(), Help: f.GetHelp(), Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.Labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				s.Value = m.GetCounter().GetValue()
			case m.Gauge != nil:
				s.Value = m.GetGauge().GetValue()
			case m.Histogram != nil:
				s.Count, s.Sum = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				s.Buckets = map[float64]uint64{}
				for _, b := range m.GetHistogram().GetBucket() {
					s.Buckets[b.GetUpperBound()] = b.GetCumulativeCount()
				}
			}
			out[name] = append(out[name], s)
		}
	}
	return out
}

// TestExpositionParses: every metric kind, as served by Handler, reads
// back through expfmt with its type, help, labels (escaped ones too) and
// values; histograms with cumulative buckets, +Inf, sum and count.
func TestExpositionParses(t *testing.T) {
	reg := newExample(t)
	resp := scrape(t, prom.Handler(reg, slog.New(slog.DiscardHandler)), nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	got := flatten(parse(t, resp.Body))
	inf := math.Inf(+1)
	want := map[string][]sample{
		"ex_plain_total": {{Type: "COUNTER", Help: "A counter.", Labels: map[string]string{}, Value: 3.5}},
		"ex_requests_total": {
			{Type: "COUNTER", Help: "Help with a \\ backslash\nand a newline.", Labels: map[string]string{"zone": "a", "route": "say \"hi\"\\\n", "code": "200"}, Value: 3},
			{Type: "COUNTER", Help: "Help with a \\ backslash\nand a newline.", Labels: map[string]string{"zone": "a", "route": "plain", "code": "500"}, Value: 1},
		},
		"ex_queue_depth": {{Type: "GAUGE", Help: "A gauge.", Labels: map[string]string{}, Value: 5.5}},
		"ex_state": {
			{Type: "GAUGE", Help: "A gauge vector.", Labels: map[string]string{"state": "down"}, Value: math.Inf(-1)},
			{Type: "GAUGE", Help: "A gauge vector.", Labels: map[string]string{"state": "up"}, Value: 1},
		},
		"ex_func": {{Type: "GAUGE", Help: "A gauge func.", Labels: map[string]string{}, Value: 42}},
		"ex_seconds": {{Type: "HISTOGRAM", Help: "A histogram.", Labels: map[string]string{}, Count: 5, Sum: 55.65,
			Buckets: map[float64]uint64{0.1: 2, 1: 3, 10: 4, inf: 5}}},
		"ex_handler_seconds": {
			{Type: "HISTOGRAM", Help: "A histogram vector.", Labels: map[string]string{"result": "error"}, Count: 1, Sum: 20,
				Buckets: map[float64]uint64{0.001: 0, 0.01: 0, 0.1: 0, inf: 1}},
			{Type: "HISTOGRAM", Help: "A histogram vector.", Labels: map[string]string{"result": "ok"}, Count: 1, Sum: 0.002,
				Buckets: map[float64]uint64{0.001: 0, 0.01: 1, 0.1: 1, inf: 1}},
		},
		"ex_expiry_timestamp_seconds": {
			{Type: "GAUGE", Help: "A const metric.", Labels: map[string]string{"store": "main", "alias": "ca"}, Value: 1.7e9},
			{Type: "GAUGE", Help: "A const metric.", Labels: map[string]string{"store": "main", "alias": "node"}, Value: 1.8e9},
		},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool {
		return a == b || math.Abs(a-b) < 1e-9 || math.IsNaN(a) && math.IsNaN(b)
	})); diff != "" {
		t.Errorf("parsed exposition (-want +got):\n%s", diff)
	}
}

// TestExpositionText: the exact bytes, for a stable, sorted output
// (families by name, series by labels, labels by name, le last).
func TestExpositionText(t *testing.T) {
	reg := prom.NewRegistry()
	cv := prom.NewCounterVec(prom.CounterOpts{Name: "b_total", Help: "B."}, []string{"z", "a"})
	cv.WithLabelValues("2", "y").Inc()
	cv.WithLabelValues("1", "y").Add(1e6)
	cv.WithLabelValues("1", "x").Add(0.25)
	h := prom.NewHistogram(prom.HistogramOpts{Name: "a_seconds", Help: "A.", ConstLabels: prom.Labels{"k": "v"}, Buckets: []float64{0.5, 1}})
	h.Observe(0.5)
	h.Observe(math.NaN())
	g := prom.NewGauge(prom.GaugeOpts{Name: "c", Help: "Quote \" stays in help."})
	g.Set(-0.125)
	reg.MustRegister(cv, h, g)
	var b bytes.Buffer
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if err := prom.WriteText(&b, families); err != nil {
		t.Fatal(err)
	}
	want := `# HELP a_seconds A.
# TYPE a_seconds histogram
a_seconds_bucket{k="v",le="0.5"} 1
a_seconds_bucket{k="v",le="1"} 1
a_seconds_bucket{k="v",le="+Inf"} 2
a_seconds_sum{k="v"} NaN
a_seconds_count{k="v"} 2
# HELP b_total B.
# TYPE b_total counter
b_total{a="x",z="1"} 0.25
b_total{a="y",z="1"} 1e+06
b_total{a="y",z="2"} 1
# HELP c Quote " stays in help.
# TYPE c gauge
c -0.125
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("exposition (-want +got):\n%s", diff)
	}
}

// TestHandlerGzip: a scraper that accepts gzip gets the same exposition
// compressed; one that refuses it (q=0) gets it plain.
func TestHandlerGzip(t *testing.T) {
	reg := newExample(t)
	h := prom.Handler(reg, slog.New(slog.DiscardHandler))
	plain := scrape(t, h, http.Header{"Accept-Encoding": {"gzip;q=0"}})
	if enc := plain.Header.Get("Content-Encoding"); enc != "" {
		t.Fatalf("Content-Encoding %q for gzip;q=0", enc)
	}
	want, err := io.ReadAll(plain.Body)
	if err != nil {
		t.Fatal(err)
	}
	zipped := scrape(t, h, http.Header{"Accept-Encoding": {"deflate, gzip"}})
	if enc := zipped.Header.Get("Content-Encoding"); enc != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", enc)
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("gzipped exposition differs (-plain +gzip):\n%s", diff)
	}
}

// TestHandlerGatherError: a collector that breaks the exposition (the
// same series twice) makes the scrape fail with 500 and the reason,
// rather than serve a file Prometheus would reject.
func TestHandlerGatherError(t *testing.T) {
	reg := prom.NewRegistry()
	reg.MustRegister(twiceCollector{})
	resp := scrape(t, prom.Handler(reg, slog.New(slog.DiscardHandler)), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || !strings.Contains(string(body), `series ex_twice{a="1"} collected twice`) {
		t.Errorf("status %d, body %q; want 500 naming the duplicate series", resp.StatusCode, body)
	}
}

type twiceCollector struct{}

var twiceDesc = prom.NewDesc("ex_twice", "Twice.", []string{"a"}, nil)

func (twiceCollector) Describe(ch chan<- *prom.Desc) { ch <- twiceDesc }
func (twiceCollector) Collect(ch chan<- prom.Metric) {
	ch <- prom.MustNewConstMetric(twiceDesc, prom.CounterValue, 1, "1")
	ch <- prom.MustNewConstMetric(twiceDesc, prom.CounterValue, 2, "1")
}
