package prom_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
)

// TestRegisterRefuses: what the pedantic client_golang registry refuses
// at registration, Register refuses too, naming the metric.
func TestRegisterRefuses(t *testing.T) {
	counter := func(name, help string, labels ...string) prom.Collector {
		return prom.NewCounterVec(prom.CounterOpts{Name: name, Help: help}, labels)
	}
	tests := []struct {
		name   string
		first  prom.Collector // registered before, if not nil
		second prom.Collector
		want   string
	}{
		{"same name, other labels", counter("x_total", "X.", "a"), counter("x_total", "X.", "b"), "metric x_total{b}: registered before with other label names or help"},
		{"same name, more labels", counter("x_total", "X.", "a"), counter("x_total", "X.", "a", "b"), "registered before with other label names"},
		{"same name, other help", counter("x_total", "X."), counter("x_total", "Y."), "registered before with other label names or help"},
		{"same name and labels", counter("x_total", "X.", "a"), counter("x_total", "X.", "a"), "metric x_total{a} is already registered"},
		{"invalid metric name", nil, counter("x-total", "X."), `invalid metric name "x-total"`},
		{"empty metric name", nil, counter("", "X."), `invalid metric name ""`},
		{"invalid label name", nil, counter("x_total", "X.", "a-b"), `metric x_total: invalid label name "a-b"`},
		{"reserved label name", nil, counter("x_total", "X.", "__a"), `invalid label name "__a"`},
		{"duplicate label name", nil, counter("x_total", "X.", "a", "a"), `metric x_total: duplicate label name "a"`},
		{"const and variable label clash", nil, prom.NewCounterVec(prom.CounterOpts{Name: "x_total", Help: "X.", ConstLabels: prom.Labels{"a": "1"}}, []string{"a"}), `duplicate label name "a"`},
		{"invalid UTF-8 const label", nil, prom.NewCounter(prom.CounterOpts{Name: "x_total", Help: "X.", ConstLabels: prom.Labels{"a": "\xff"}}), "not valid UTF-8"},
		{"two descs of one name in a collector", nil, twoDescs{}, "described twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prom.NewPedanticRegistry()
			if tt.first != nil {
				if err := reg.Register(tt.first); err != nil {
					t.Fatalf("first Register: %v", err)
				}
			}
			err := reg.Register(tt.second)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Register = %v, want an error containing %q", err, tt.want)
			}
			// Nothing of the refused collector is gathered.
			if tt.first == nil {
				if names := promtest.Names(t, reg); len(names) != 0 {
					t.Errorf("after a refused Register, gathered %v", names)
				}
			}
		})
	}
}

type twoDescs struct{}

func (twoDescs) Describe(ch chan<- *prom.Desc) {
	ch <- prom.NewDesc("x_total", "X.", nil, nil)
	ch <- prom.NewDesc("x_total", "X.", nil, nil)
}
func (twoDescs) Collect(chan<- prom.Metric) {}

// TestRegisterAccepts: one name with other constant label values is one
// family; Unregister frees a name; the same collector twice is an
// AlreadyRegisteredError.
func TestRegisterAccepts(t *testing.T) {
	reg := prom.NewPedanticRegistry()
	a := prom.NewGauge(prom.GaugeOpts{Name: "x", Help: "X.", ConstLabels: prom.Labels{"k": "a"}})
	b := prom.NewGauge(prom.GaugeOpts{Name: "x", Help: "X.", ConstLabels: prom.Labels{"k": "b"}})
	a.Set(1)
	b.Set(2)
	reg.MustRegister(a, b)
	var already prom.AlreadyRegisteredError
	if err := reg.Register(a); !errors.As(err, &already) {
		t.Errorf("registering a twice = %v, want AlreadyRegisteredError", err)
	}
	if diff := cmp.Diff(map[string]float64{`x{k="a"}`: 1, `x{k="b"}`: 2}, promtest.Series(t, reg)); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	if !reg.Unregister(a) {
		t.Fatal("Unregister(a) = false")
	}
	if reg.Unregister(a) {
		t.Error("second Unregister(a) = true")
	}
	if err := reg.Register(prom.NewGauge(prom.GaugeOpts{Name: "x", Help: "X.", ConstLabels: prom.Labels{"k": "a"}})); err != nil {
		t.Errorf("register after Unregister: %v", err)
	}
	reg.Unregister(b)
	if err := reg.Register(prom.NewCounter(prom.CounterOpts{Name: "y_total", Help: "Y."})); err != nil {
		t.Errorf("register another name: %v", err)
	}
}

// TestPedanticGather: a collector that collects a metric it did not
// describe fails a pedantic Gather, not a plain one.
func TestPedanticGather(t *testing.T) {
	for _, tt := range []struct {
		reg  *prom.Registry
		fail bool
	}{{prom.NewRegistry(), false}, {prom.NewPedanticRegistry(), true}} {
		tt.reg.MustRegister(undescribed{})
		_, err := tt.reg.Gather()
		if (err != nil) != tt.fail {
			t.Errorf("pedantic %v: Gather error %v", tt.fail, err)
		}
		if err != nil && !strings.Contains(err.Error(), "ex_other was collected but not described") {
			t.Errorf("error %v does not name the metric", err)
		}
	}
}

type undescribed struct{}

var (
	describedDesc = prom.NewDesc("ex_described", "D.", nil, nil)
	otherDesc     = prom.NewDesc("ex_other", "O.", nil, nil)
)

func (undescribed) Describe(ch chan<- *prom.Desc) { ch <- describedDesc }
func (undescribed) Collect(ch chan<- prom.Metric) {
	ch <- prom.MustNewConstMetric(describedDesc, prom.GaugeValue, 1)
	ch <- prom.MustNewConstMetric(otherDesc, prom.GaugeValue, 1)
}

// TestCurry: a curried vector fixes labels; its children are the
// parent's, and currying an unknown or curried label fails.
func TestCurry(t *testing.T) {
	reg := prom.NewRegistry()
	v := prom.NewCounterVec(prom.CounterOpts{Name: "req_total", Help: "R."}, []string{"host", "route", "code"})
	reg.MustRegister(v)
	byRoute := v.MustCurryWith(prom.Labels{"host": "hub", "route": "apps"})
	byRoute.WithLabelValues("200").Inc()
	byRoute.WithLabelValues("200").Inc()
	v.WithLabelValues("hub", "apps", "200").Inc()
	byRoute.With(prom.Labels{"code": "404"}).Inc()
	byCode := v.MustCurryWith(prom.Labels{"code": "500"})
	byCode.WithLabelValues("hub", "api").Inc()
	if got := promtest.Value(t, reg, "req_total", "route", "apps", "code", "200"); got != 3 {
		t.Errorf("curried and uncurried 200s = %v, want 3", got)
	}
	want := map[string]float64{
		`req_total{code="200",host="hub",route="apps"}`: 3,
		`req_total{code="404",host="hub",route="apps"}`: 1,
		`req_total{code="500",host="hub",route="api"}`:  1,
	}
	if diff := cmp.Diff(want, promtest.Series(t, reg)); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	if _, err := v.CurryWith(prom.Labels{"nope": "x"}); err == nil {
		t.Error("currying an unknown label: no error")
	}
	if _, err := byRoute.CurryWith(prom.Labels{"route": "x"}); err == nil {
		t.Error("currying a curried label: no error")
	}
	hv := prom.NewHistogramVec(prom.HistogramOpts{Name: "h", Help: "H."}, []string{"a", "b"})
	gv := prom.NewGaugeVec(prom.GaugeOpts{Name: "g", Help: "G."}, []string{"a", "b"})
	reg.MustRegister(hv, gv)
	hv.MustCurryWith(prom.Labels{"b": "2"}).WithLabelValues("1").Observe(1)
	gv.MustCurryWith(prom.Labels{"a": "1"}).With(prom.Labels{"b": "2"}).Set(5)
	if got := promtest.Value(t, reg, "h", "a", "1", "b", "2"); got != 1 {
		t.Errorf("curried histogram count = %v, want 1", got)
	}
	if got := promtest.Value(t, reg, "g", "a", "1", "b", "2"); got != 5 {
		t.Errorf("curried gauge = %v, want 5", got)
	}
}

// TestMisuse panics, as client_golang does, on programming errors: a
// wrong label count, a negative counter increment, unsorted buckets, a
// histogram label named le.
func TestMisuse(t *testing.T) {
	v := prom.NewCounterVec(prom.CounterOpts{Name: "x_total", Help: "X."}, []string{"a", "b"})
	tests := []struct {
		name string
		fn   func()
	}{
		{"too few label values", func() { v.WithLabelValues("1") }},
		{"too many label values", func() { v.WithLabelValues("1", "2", "3") }},
		{"too few after curry", func() { v.MustCurryWith(prom.Labels{"a": "1"}).WithLabelValues() }},
		{"unknown label", func() { v.With(prom.Labels{"a": "1", "c": "2"}) }},
		{"negative add", func() { prom.NewCounter(prom.CounterOpts{Name: "y_total"}).Add(-1) }},
		{"buckets not increasing", func() { prom.NewHistogram(prom.HistogramOpts{Name: "h", Buckets: []float64{1, 1}}) }},
		{"le label", func() { prom.NewHistogramVec(prom.HistogramOpts{Name: "h"}, []string{"le"}) }},
		{"bad exponential buckets", func() { prom.ExponentialBuckets(0, 2, 3) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.fn()
		})
	}
}

func TestBuckets(t *testing.T) {
	if diff := cmp.Diff([]float64{0.5, 2, 8}, prom.ExponentialBuckets(0.5, 4, 3)); diff != "" {
		t.Errorf("ExponentialBuckets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{1, 3, 5, 7}, prom.LinearBuckets(1, 2, 4)); diff != "" {
		t.Errorf("LinearBuckets (-want +got):\n%s", diff)
	}
}
