package prom

import (
	"fmt"
	"math"
	"sync/atomic"
)

// MetricType is a family's TYPE in the exposition.
type MetricType string

// The metric types written in # TYPE lines.
const (
	TypeCounter   MetricType = "counter"
	TypeGauge     MetricType = "gauge"
	TypeHistogram MetricType = "histogram"
	TypeSummary   MetricType = "summary"
	TypeUntyped   MetricType = "untyped"
)

// ValueType is the type of a constant metric.
type ValueType int

// The value types of MustNewConstMetric.
const (
	_ ValueType = iota
	CounterValue
	GaugeValue
	UntypedValue
)

// Collector hands its descriptions and, at scrape time, its metrics to a
// registry.
type Collector interface {
	Describe(chan<- *Desc)
	Collect(chan<- Metric)
}

// Metric is one series, collected at scrape time. Only this package makes
// them (the metric kinds below and MustNewConstMetric).
type Metric interface {
	Desc() *Desc
	// write fills s (labels and value) and returns the metric's type.
	write(s *Series) MetricType
}

// Opts names a metric. Name is required; Namespace and Subsystem, if set,
// prefix it (joined with "_"). ConstLabels are labels every series of the
// metric carries.
type Opts struct {
	Namespace   string
	Subsystem   string
	Name        string
	Help        string
	ConstLabels Labels
}

// CounterOpts names a counter.
type CounterOpts Opts

// GaugeOpts names a gauge.
type GaugeOpts Opts

func (o Opts) desc(variableLabels []string) *Desc {
	return NewDesc(BuildFQName(o.Namespace, o.Subsystem, o.Name), o.Help, variableLabels, o.ConstLabels)
}

// Counter only goes up.
type Counter interface {
	Metric
	Collector
	// Inc adds 1.
	Inc()
	// Add adds v; it panics if v is negative.
	Add(v float64)
}

// Gauge goes up and down.
type Gauge interface {
	Metric
	Collector
	Set(v float64)
	Inc()
	Dec()
	Add(v float64)
	Sub(v float64)
}

// GaugeFunc is a gauge whose value a function returns at scrape time.
type GaugeFunc interface {
	Metric
	Collector
}

// addFloat adds v to the float64 whose bits are in *bits.
func addFloat(bits *atomic.Uint64, v float64) {
	for {
		old := bits.Load()
		if bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// counter keeps whole increments in an integer (one atomic add, the
// common case) and fractions in a float.
type counter struct {
	desc *Desc
	lvs  []string
	n    atomic.Uint64
	frac atomic.Uint64 // float64 bits
}

// NewCounter returns a counter to register.
func NewCounter(opts CounterOpts) Counter {
	return &counter{desc: Opts(opts).desc(nil)}
}

func (c *counter) Desc() *Desc              { return c.desc }
func (c *counter) Describe(ch chan<- *Desc) { ch <- c.desc }
func (c *counter) Collect(ch chan<- Metric) { ch <- c }
func (c *counter) Inc()                     { c.n.Add(1) }

func (c *counter) Add(v float64) {
	if v < 0 {
		panic(fmt.Sprintf("counter %s: cannot add a negative value (%v)", c.desc.fqName, v))
	}
	if u := uint64(v); float64(u) == v && v < 1<<53 {
		c.n.Add(u)
		return
	}
	addFloat(&c.frac, v)
}

func (c *counter) value() float64 {
	return float64(c.n.Load()) + math.Float64frombits(c.frac.Load())
}

func (c *counter) write(s *Series) MetricType {
	s.Labels = c.desc.labelPairs(c.lvs)
	s.Value = c.value()
	return TypeCounter
}

type gauge struct {
	desc *Desc
	lvs  []string
	bits atomic.Uint64 // float64 bits
}

// NewGauge returns a gauge to register.
func NewGauge(opts GaugeOpts) Gauge {
	return &gauge{desc: Opts(opts).desc(nil)}
}

func (g *gauge) Desc() *Desc              { return g.desc }
func (g *gauge) Describe(ch chan<- *Desc) { ch <- g.desc }
func (g *gauge) Collect(ch chan<- Metric) { ch <- g }
func (g *gauge) Set(v float64)            { g.bits.Store(math.Float64bits(v)) }
func (g *gauge) Inc()                     { addFloat(&g.bits, 1) }
func (g *gauge) Dec()                     { addFloat(&g.bits, -1) }
func (g *gauge) Add(v float64)            { addFloat(&g.bits, v) }
func (g *gauge) Sub(v float64)            { addFloat(&g.bits, -v) }

func (g *gauge) write(s *Series) MetricType {
	s.Labels = g.desc.labelPairs(g.lvs)
	s.Value = math.Float64frombits(g.bits.Load())
	return TypeGauge
}

type gaugeFunc struct {
	desc *Desc
	fn   func() float64
}

// NewGaugeFunc returns a gauge whose value fn returns at each scrape; fn
// must be safe to call concurrently.
func NewGaugeFunc(opts GaugeOpts, fn func() float64) GaugeFunc {
	return &gaugeFunc{desc: Opts(opts).desc(nil), fn: fn}
}

func (g *gaugeFunc) Desc() *Desc              { return g.desc }
func (g *gaugeFunc) Describe(ch chan<- *Desc) { ch <- g.desc }
func (g *gaugeFunc) Collect(ch chan<- Metric) { ch <- g }

func (g *gaugeFunc) write(s *Series) MetricType {
	s.Labels = g.desc.labelPairs(nil)
	s.Value = g.fn()
	return TypeGauge
}

type constMetric struct {
	desc *Desc
	typ  MetricType
	v    float64
	lvs  []string
}

// NewConstMetric returns a metric with a fixed value, for collectors that
// read their values at scrape time.
func NewConstMetric(desc *Desc, vt ValueType, value float64, labelValues ...string) (Metric, error) {
	if desc.err != nil {
		return nil, desc.err
	}
	if len(labelValues) != len(desc.variables) {
		return nil, fmt.Errorf("metric %s: %d label values for %d labels", desc, len(labelValues), len(desc.variables))
	}
	typ := TypeUntyped
	switch vt {
	case CounterValue:
		typ = TypeCounter
	case GaugeValue:
		typ = TypeGauge
	}
	return &constMetric{desc: desc, typ: typ, v: value, lvs: labelValues}, nil
}

// MustNewConstMetric is NewConstMetric that panics on a wrong desc or
// label count, which are programming errors.
func MustNewConstMetric(desc *Desc, vt ValueType, value float64, labelValues ...string) Metric {
	m, err := NewConstMetric(desc, vt, value, labelValues...)
	if err != nil {
		panic(err)
	}
	return m
}

func (m *constMetric) Desc() *Desc { return m.desc }

func (m *constMetric) write(s *Series) MetricType {
	s.Labels = m.desc.labelPairs(m.lvs)
	s.Value = m.v
	return m.typ
}

// constSummary is a summary read at scrape time (the Go collector's GC
// pauses).
type constSummary struct {
	desc *Desc
	s    SummaryData
}

func (m *constSummary) Desc() *Desc { return m.desc }

func (m *constSummary) write(s *Series) MetricType {
	s.Labels = m.desc.labelPairs(nil)
	s.Summary = &m.s
	return TypeSummary
}

var (
	_ Counter   = (*counter)(nil)
	_ Gauge     = (*gauge)(nil)
	_ GaugeFunc = (*gaugeFunc)(nil)
	_ Metric    = (*constMetric)(nil)
	_ Metric    = (*constSummary)(nil)
)
