package prom

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registerer takes collectors.
type Registerer interface {
	// Register adds c, or returns why not: an invalid description, a
	// metric registered before with other label names, help text or the
	// same constant labels, or c itself registered before
	// (AlreadyRegisteredError).
	Register(c Collector) error
	// MustRegister registers each collector and panics on an error.
	MustRegister(cs ...Collector)
	// Unregister removes c; it reports whether c was registered.
	Unregister(c Collector) bool
}

// Gatherer gathers every registered metric.
type Gatherer interface {
	// Gather returns the families sorted by name, each's series sorted by
	// labels; with an error, what could be gathered.
	Gather() ([]*Family, error)
}

// Family is every series of one metric name, as a scrape reads it.
type Family struct {
	Name   string
	Help   string
	Type   MetricType
	Series []Series
}

// Series is one series: its labels (sorted by name) and value.
type Series struct {
	Labels    []LabelPair
	Value     float64        // counters, gauges, untyped
	Histogram *HistogramData // histograms only
	Summary   *SummaryData   // summaries only
}

// HistogramData is a histogram at one scrape. Buckets are cumulative and
// leave out +Inf, whose count is Count.
type HistogramData struct {
	Count   uint64
	Sum     float64
	Buckets []Bucket
}

// Bucket is the number of observations at most UpperBound.
type Bucket struct {
	UpperBound      float64
	CumulativeCount uint64
}

// SummaryData is a summary at one scrape.
type SummaryData struct {
	Count     uint64
	Sum       float64
	Quantiles []Quantile
}

// Quantile is one quantile of a summary.
type Quantile struct {
	Quantile, Value float64
}

// AlreadyRegisteredError is returned when a collector is registered twice.
type AlreadyRegisteredError struct {
	Desc *Desc // the first description found registered
}

func (e AlreadyRegisteredError) Error() string {
	return fmt.Sprintf("metric %s is already registered", e.Desc)
}

// Registry holds collectors and gathers their metrics. Make one per
// agent (and per test) with NewRegistry; there is no global one.
type Registry struct {
	pedantic bool

	mu       sync.RWMutex
	entries  []entry               // guarded by mu; in registration order
	families map[string]familyInfo // guarded by mu; by metric name
}

type entry struct {
	c     Collector
	descs []*Desc
}

// familyInfo is what every desc of one name must agree on, and the
// constant label values taken.
type familyInfo struct {
	help       string
	labelNames string
	consts     map[string]*Desc // by constKey
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]familyInfo{}}
}

// NewPedanticRegistry returns a registry that also checks, at each
// Gather, that collectors only collect metrics they described, for tests
// of custom collectors.
func NewPedanticRegistry() *Registry {
	r := NewRegistry()
	r.pedantic = true
	return r
}

func describe(c Collector) []*Desc {
	ch := make(chan *Desc, 8)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var descs []*Desc
	for d := range ch {
		descs = append(descs, d)
	}
	return descs
}

// Register implements Registerer.
func (r *Registry) Register(c Collector) error {
	descs := describe(c)
	var errs []error
	for _, d := range descs {
		if d.err != nil {
			errs = append(errs, d.err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkLocked(descs); err != nil {
		return err
	}
	for _, d := range descs {
		f, ok := r.families[d.fqName]
		if !ok {
			f = familyInfo{help: d.help, labelNames: d.labelNamesKey(), consts: map[string]*Desc{}}
			r.families[d.fqName] = f
		}
		f.consts[d.constKey()] = d
	}
	r.entries = append(r.entries, entry{c: c, descs: descs})
	return nil
}

// checkLocked returns why descs cannot join the registered ones.
func (r *Registry) checkLocked(descs []*Desc) error {
	mine := map[string]bool{}
	for _, d := range descs {
		key := d.fqName + "\x00" + d.constKey()
		if mine[key] {
			return fmt.Errorf("metric %s is described twice with the same constant labels", d)
		}
		mine[key] = true
		f, ok := r.families[d.fqName]
		if !ok {
			continue
		}
		if f.labelNames != d.labelNamesKey() || f.help != d.help {
			return fmt.Errorf("metric %s: registered before with other label names or help", d)
		}
		if prev, ok := f.consts[d.constKey()]; ok {
			if prev == d {
				return AlreadyRegisteredError{Desc: d}
			}
			return fmt.Errorf("metric %s is already registered with the same constant label values", d)
		}
	}
	return nil
}

// MustRegister implements Registerer.
func (r *Registry) MustRegister(cs ...Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements Registerer. A collector is known by the
// descriptions it gives.
func (r *Registry) Unregister(c Collector) bool {
	descs := describe(c)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.entries {
		if len(descs) == 0 || !slices.Equal(e.descs, descs) {
			continue
		}
		for _, d := range descs {
			f := r.families[d.fqName]
			delete(f.consts, d.constKey())
			if len(f.consts) == 0 {
				delete(r.families, d.fqName)
			}
		}
		r.entries = slices.Delete(r.entries, i, i+1)
		return true
	}
	return false
}

// Gather implements Gatherer. It fails on a series collected twice, on
// two types or helps for one name, and (pedantic) on undescribed metrics.
func (r *Registry) Gather() ([]*Family, error) {
	r.mu.RLock()
	entries := slices.Clone(r.entries)
	r.mu.RUnlock()
	g := gathering{families: map[string]*Family{}, seen: map[string]bool{}}
	for _, e := range entries {
		ch := make(chan Metric, 16)
		go func() {
			e.c.Collect(ch)
			close(ch)
		}()
		for m := range ch {
			if r.pedantic && len(e.descs) > 0 && !slices.Contains(e.descs, m.Desc()) {
				g.errs = append(g.errs, fmt.Errorf("metric %s was collected but not described", m.Desc()))
				continue
			}
			g.add(m)
		}
	}
	out := make([]*Family, 0, len(g.families))
	for _, f := range g.families {
		slices.SortFunc(f.Series, func(a, b Series) int { return compareLabels(a.Labels, b.Labels) })
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *Family) int { return strings.Compare(a.Name, b.Name) })
	return out, errors.Join(g.errs...)
}

type gathering struct {
	families map[string]*Family
	seen     map[string]bool // series keys
	errs     []error
}

func (g *gathering) add(m Metric) {
	d := m.Desc()
	if d.err != nil {
		g.errs = append(g.errs, d.err)
		return
	}
	var s Series
	typ := m.write(&s)
	f, ok := g.families[d.fqName]
	if !ok {
		f = &Family{Name: d.fqName, Help: d.help, Type: typ}
		g.families[d.fqName] = f
	} else if f.Type != typ || f.Help != d.help {
		g.errs = append(g.errs, fmt.Errorf("metric %s collected as %s with help %q and as %s with help %q", d.fqName, f.Type, f.Help, typ, d.help))
		return
	}
	key := seriesKey(d.fqName, s.Labels)
	if g.seen[key] {
		g.errs = append(g.errs, fmt.Errorf("series %s collected twice", key))
		return
	}
	g.seen[key] = true
	f.Series = append(f.Series, s)
}

func seriesKey(name string, labels []LabelPair) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

func compareLabels(a, b []LabelPair) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i].Name, b[i].Name); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

var (
	_ Registerer = (*Registry)(nil)
	_ Gatherer   = (*Registry)(nil)
)
