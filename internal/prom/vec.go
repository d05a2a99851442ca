package prom

import (
	"fmt"
	"slices"
	"sync"
)

// vecCore holds a vector's children, found by the hash of their label
// values without allocating once a child exists.
type vecCore[T Metric] struct {
	desc     *Desc
	newChild func(lvs []string) T

	mu       sync.RWMutex
	children map[uint64][]vecChild[T] // guarded by mu; by hashValues
}

type vecChild[T Metric] struct {
	lvs []string
	m   T
}

// vec is a view of a core with some labels curried (fixed).
type vec[T Metric] struct {
	core  *vecCore[T]
	curry []curried // sorted by index
}

type curried struct {
	i     int // index in the desc's variable labels
	value string
}

func newVec[T Metric](d *Desc, newChild func([]string) T) vec[T] {
	return vec[T]{core: &vecCore[T]{desc: d, newChild: newChild, children: map[uint64][]vecChild[T]{}}}
}

func hashValues(lvs []string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, v := range lvs {
		for i := 0; i < len(v); i++ {
			h = (h ^ uint64(v[i])) * prime
		}
		h = (h ^ 0xff) * prime // a separator no UTF-8 string contains
	}
	return h
}

// get returns the child for the label values not curried, creating it on
// first use. A wrong number of values is a programming error and panics,
// as in client_golang.
func (v vec[T]) get(lvs []string) T {
	c := v.core
	if len(lvs)+len(v.curry) != len(c.desc.variables) {
		panic(fmt.Sprintf("metric %s: %d label values for %d labels", c.desc, len(lvs), len(c.desc.variables)-len(v.curry)))
	}
	full := lvs
	if len(v.curry) > 0 {
		var buf [8]string
		full = buf[:0]
		j := 0
		for i := range c.desc.variables {
			if j < len(v.curry) && v.curry[j].i == i {
				full = append(full, v.curry[j].value)
				j++
			} else {
				full = append(full, lvs[i-j])
			}
		}
	}
	h := hashValues(full)
	c.mu.RLock()
	m, ok := c.findLocked(h, full)
	c.mu.RUnlock()
	if ok {
		return m
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.findLocked(h, full); ok {
		return m
	}
	own := slices.Clone(full)
	m = c.newChild(own)
	c.children[h] = append(c.children[h], vecChild[T]{lvs: own, m: m})
	return m
}

func (c *vecCore[T]) findLocked(h uint64, lvs []string) (T, bool) {
	for _, ch := range c.children[h] {
		if slices.Equal(ch.lvs, lvs) {
			return ch.m, true
		}
	}
	var zero T
	return zero, false
}

// with orders labels by the desc's variable labels.
func (v vec[T]) with(labels Labels) T {
	d := v.core.desc
	lvs := make([]string, 0, len(labels))
	for i, name := range d.variables {
		if v.isCurried(i) {
			continue
		}
		value, ok := labels[name]
		if !ok {
			panic(fmt.Sprintf("metric %s: no value for label %q", d, name))
		}
		lvs = append(lvs, value)
	}
	if len(lvs) != len(labels) {
		panic(fmt.Sprintf("metric %s: labels %v do not match", d, labels))
	}
	return v.get(lvs)
}

func (v vec[T]) isCurried(i int) bool {
	return slices.ContainsFunc(v.curry, func(c curried) bool { return c.i == i })
}

// curryWith returns a view with labels fixed; each must be a variable
// label not yet curried.
func (v vec[T]) curryWith(labels Labels) (vec[T], error) {
	d := v.core.desc
	out := vec[T]{core: v.core, curry: slices.Clone(v.curry)}
	n := 0
	for i, name := range d.variables {
		value, ok := labels[name]
		if !ok {
			continue
		}
		if v.isCurried(i) {
			return vec[T]{}, fmt.Errorf("metric %s: label %q is already curried", d, name)
		}
		out.curry = append(out.curry, curried{i: i, value: value})
		n++
	}
	if n != len(labels) {
		return vec[T]{}, fmt.Errorf("metric %s: curried labels %v are not all among its labels", d, labels)
	}
	slices.SortFunc(out.curry, func(a, b curried) int { return a.i - b.i })
	return out, nil
}

func (v vec[T]) describe(ch chan<- *Desc) { ch <- v.core.desc }

func (v vec[T]) collect(ch chan<- Metric) {
	c := v.core
	c.mu.RLock()
	var all []Metric
	for _, list := range c.children {
		for _, ch := range list {
			all = append(all, ch.m)
		}
	}
	c.mu.RUnlock()
	for _, m := range all {
		ch <- m
	}
}

// CounterVec is a counter per combination of label values.
type CounterVec struct{ v vec[*counter] }

// NewCounterVec returns a counter vector with the given label names.
func NewCounterVec(opts CounterOpts, labelNames []string) *CounterVec {
	d := Opts(opts).desc(labelNames)
	return &CounterVec{newVec(d, func(lvs []string) *counter { return &counter{desc: d, lvs: lvs} })}
}

// WithLabelValues returns the counter for the label values, in the order
// of the label names (curried ones left out); it panics on a wrong count.
func (v *CounterVec) WithLabelValues(lvs ...string) Counter { return v.v.get(lvs) }

// With returns the counter for the labels; it panics on missing or
// unknown ones.
func (v *CounterVec) With(labels Labels) Counter { return v.v.with(labels) }

// CurryWith returns a view of v whose given labels are fixed.
func (v *CounterVec) CurryWith(labels Labels) (*CounterVec, error) {
	c, err := v.v.curryWith(labels)
	if err != nil {
		return nil, err
	}
	return &CounterVec{c}, nil
}

// MustCurryWith is CurryWith that panics on an error.
func (v *CounterVec) MustCurryWith(labels Labels) *CounterVec {
	c, err := v.CurryWith(labels)
	if err != nil {
		panic(err)
	}
	return c
}

func (v *CounterVec) Describe(ch chan<- *Desc) { v.v.describe(ch) }
func (v *CounterVec) Collect(ch chan<- Metric) { v.v.collect(ch) }

// GaugeVec is a gauge per combination of label values.
type GaugeVec struct{ v vec[*gauge] }

// NewGaugeVec returns a gauge vector with the given label names.
func NewGaugeVec(opts GaugeOpts, labelNames []string) *GaugeVec {
	d := Opts(opts).desc(labelNames)
	return &GaugeVec{newVec(d, func(lvs []string) *gauge { return &gauge{desc: d, lvs: lvs} })}
}

// WithLabelValues returns the gauge for the label values.
func (v *GaugeVec) WithLabelValues(lvs ...string) Gauge { return v.v.get(lvs) }

// With returns the gauge for the labels.
func (v *GaugeVec) With(labels Labels) Gauge { return v.v.with(labels) }

// CurryWith returns a view of v whose given labels are fixed.
func (v *GaugeVec) CurryWith(labels Labels) (*GaugeVec, error) {
	c, err := v.v.curryWith(labels)
	if err != nil {
		return nil, err
	}
	return &GaugeVec{c}, nil
}

// MustCurryWith is CurryWith that panics on an error.
func (v *GaugeVec) MustCurryWith(labels Labels) *GaugeVec {
	c, err := v.CurryWith(labels)
	if err != nil {
		panic(err)
	}
	return c
}

func (v *GaugeVec) Describe(ch chan<- *Desc) { v.v.describe(ch) }
func (v *GaugeVec) Collect(ch chan<- Metric) { v.v.collect(ch) }

// HistogramVec is a histogram per combination of label values.
type HistogramVec struct{ v vec[*histogram] }

// NewHistogramVec returns a histogram vector with the given label names.
func NewHistogramVec(opts HistogramOpts, labelNames []string) *HistogramVec {
	d := opts.desc(labelNames)
	upper := checkBuckets(opts)
	return &HistogramVec{newVec(d, func(lvs []string) *histogram { return newHistogram(d, upper, lvs) })}
}

// WithLabelValues returns the histogram for the label values.
func (v *HistogramVec) WithLabelValues(lvs ...string) Observer { return v.v.get(lvs) }

// With returns the histogram for the labels.
func (v *HistogramVec) With(labels Labels) Observer { return v.v.with(labels) }

// CurryWith returns a view of v whose given labels are fixed.
func (v *HistogramVec) CurryWith(labels Labels) (*HistogramVec, error) {
	c, err := v.v.curryWith(labels)
	if err != nil {
		return nil, err
	}
	return &HistogramVec{c}, nil
}

// MustCurryWith is CurryWith that panics on an error.
func (v *HistogramVec) MustCurryWith(labels Labels) *HistogramVec {
	c, err := v.CurryWith(labels)
	if err != nil {
		panic(err)
	}
	return c
}

func (v *HistogramVec) Describe(ch chan<- *Desc) { v.v.describe(ch) }
func (v *HistogramVec) Collect(ch chan<- Metric) { v.v.collect(ch) }

var (
	_ Collector = (*CounterVec)(nil)
	_ Collector = (*GaugeVec)(nil)
	_ Collector = (*HistogramVec)(nil)
)
