package prom

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"
)

// DefBuckets are the buckets of a histogram whose opts name none: request
// durations from 5ms to 10s.
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// HistogramOpts names a histogram and gives its buckets' upper bounds
// (strictly increasing; +Inf is implied). Nil Buckets means DefBuckets.
type HistogramOpts struct {
	Namespace   string
	Subsystem   string
	Name        string
	Help        string
	ConstLabels Labels
	Buckets     []float64
}

// Observer takes observations: a Histogram, or a HistogramVec's child.
type Observer interface {
	Observe(v float64)
}

// Histogram counts observations in buckets and sums them.
type Histogram interface {
	Metric
	Collector
	Observer
}

// ExponentialBuckets returns count bounds, the first start and each the
// previous times factor. It panics on count < 1, start <= 0 or factor <= 1.
func ExponentialBuckets(start, factor float64, count int) []float64 {
	if count < 1 || start <= 0 || factor <= 1 {
		panic(fmt.Sprintf("ExponentialBuckets(%v, %v, %d): need count >= 1, start > 0, factor > 1", start, factor, count))
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// LinearBuckets returns count bounds, the first start and each width more
// than the previous. It panics on count < 1.
func LinearBuckets(start, width float64, count int) []float64 {
	if count < 1 {
		panic(fmt.Sprintf("LinearBuckets(%v, %v, %d): need count >= 1", start, width, count))
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start += width
	}
	return b
}

// histogram keeps a count per bucket (not cumulative, so that Observe
// touches one) and the sum; _count is the total of the buckets, so that
// it always equals the +Inf bucket of the same scrape.
type histogram struct {
	desc   *Desc
	lvs    []string
	upper  []float64       // bucket bounds without +Inf, shared by a vector's children
	counts []atomic.Uint64 // len(upper)+1; the last counts what is above every bound
	sum    atomic.Uint64   // float64 bits
}

// NewHistogram returns a histogram to register. It panics on buckets that
// do not increase or a label named "le", as client_golang does.
func NewHistogram(opts HistogramOpts) Histogram {
	return newHistogram(opts.desc(nil), checkBuckets(opts), nil)
}

func (o HistogramOpts) desc(variableLabels []string) *Desc {
	if _, ok := o.ConstLabels["le"]; ok || slices.Contains(variableLabels, "le") {
		panic(fmt.Sprintf("histogram %s: the label name \"le\" is reserved for buckets", o.Name))
	}
	return Opts{Namespace: o.Namespace, Subsystem: o.Subsystem, Name: o.Name, Help: o.Help, ConstLabels: o.ConstLabels}.desc(variableLabels)
}

func checkBuckets(o HistogramOpts) []float64 {
	b := o.Buckets
	if b == nil {
		b = DefBuckets
	}
	b = slices.Clone(b)
	if n := len(b); n > 0 && math.IsInf(b[n-1], +1) {
		b = b[:n-1]
	}
	for i := 1; i < len(b); i++ {
		if !(b[i] > b[i-1]) {
			panic(fmt.Sprintf("histogram %s: bucket bounds must increase, got %v", o.Name, o.Buckets))
		}
	}
	return b
}

func newHistogram(d *Desc, upper []float64, lvs []string) *histogram {
	return &histogram{desc: d, lvs: lvs, upper: upper, counts: make([]atomic.Uint64, len(upper)+1)}
}

func (h *histogram) Desc() *Desc              { return h.desc }
func (h *histogram) Describe(ch chan<- *Desc) { ch <- h.desc }
func (h *histogram) Collect(ch chan<- Metric) { ch <- h }

// Observe counts v in the first bucket whose bound is >= v (NaN lands in
// +Inf) and adds it to the sum.
func (h *histogram) Observe(v float64) {
	lo, hi := 0, len(h.upper)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if h.upper[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if v != v { // NaN
		lo = len(h.upper)
	}
	h.counts[lo].Add(1)
	addFloat(&h.sum, v)
}

func (h *histogram) write(s *Series) MetricType {
	s.Labels = h.desc.labelPairs(h.lvs)
	d := &HistogramData{Buckets: make([]Bucket, len(h.upper))}
	var cum uint64
	for i, ub := range h.upper {
		cum += h.counts[i].Load()
		d.Buckets[i] = Bucket{UpperBound: ub, CumulativeCount: cum}
	}
	d.Count = cum + h.counts[len(h.upper)].Load()
	d.Sum = math.Float64frombits(h.sum.Load())
	s.Histogram = d
	return TypeHistogram
}

var _ Histogram = (*histogram)(nil)
