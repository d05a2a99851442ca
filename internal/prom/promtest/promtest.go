// Package promtest reads metric values in tests: one series of a
// registry by name and labels, a single collector's value, or every
// series as a map. Test-only: the product binary must not link it.
package promtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/internal/prom"
)

// Value returns the value of the one series of name in g whose labels
// include the given name/value pairs (a counter's or gauge's value, a
// histogram's or summary's count). It fails t if none or several match.
func Value(t testing.TB, g prom.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("promtest.Value(%s): labels %q are not name/value pairs", name, labels)
	}
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var found []prom.Series
	for _, f := range families {
		if f.Name != name {
			continue
		}
		for _, s := range f.Series {
			if hasLabels(s, labels) {
				found = append(found, s)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("metric %s with labels %q: %d series match, want 1", name, labels, len(found))
	}
	return value(found[0])
}

// Read returns the value of c's only series (a counter's or gauge's
// value, a histogram's or summary's count). It panics if c does not
// register or has other than one series: the test itself is wrong then.
func Read(c prom.Collector) float64 {
	reg := prom.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		panic(fmt.Sprintf("promtest.Read: register collector: %v", err))
	}
	families, err := reg.Gather()
	if err != nil {
		panic(fmt.Sprintf("promtest.Read: gather: %v", err))
	}
	if len(families) != 1 || len(families[0].Series) != 1 {
		panic(fmt.Sprintf("promtest.Read: collector has families %v, want one series", names(families)))
	}
	return value(families[0].Series[0])
}

// Series returns every series in g keyed name{label="value",...} (labels
// sorted by name; a histogram's or summary's count as its value).
func Series(t testing.TB, g prom.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	got := make(map[string]float64)
	for _, f := range families {
		for _, s := range f.Series {
			var labels []string
			for _, l := range s.Labels {
				labels = append(labels, fmt.Sprintf("%s=%q", l.Name, l.Value))
			}
			got[f.Name+"{"+strings.Join(labels, ",")+"}"] = value(s)
		}
	}
	return got
}

// Names returns the names of g's families, sorted.
func Names(t testing.TB, g prom.Gatherer) []string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	return names(families)
}

func names(families []*prom.Family) []string {
	var out []string
	for _, f := range families {
		out = append(out, f.Name)
	}
	return out
}

func hasLabels(s prom.Series, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		ok := false
		for _, l := range s.Labels {
			if l.Name == pairs[i] && l.Value == pairs[i+1] {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func value(s prom.Series) float64 {
	switch {
	case s.Histogram != nil:
		return float64(s.Histogram.Count)
	case s.Summary != nil:
		return float64(s.Summary.Count)
	}
	return s.Value
}
