// Package prom is edgefort's metrics: counters, gauges and histograms
// (alone or in label-keyed vectors), a registry that refuses inconsistent
// or duplicate registrations, the Go runtime and process collectors, and
// an http.Handler writing the Prometheus text exposition format 0.0.4.
//
// It is the subset of github.com/prometheus/client_golang that edgefort
// uses, shaped like it so call sites read the same, without the protobuf
// data model that library carries (about 1 MiB of the product binary).
// Updates are atomic and allocation-free; everything else (sorting,
// label pairs, formatting) happens at scrape time.
package prom

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Labels maps label names to values: constant labels in Opts, or the
// curried labels of a vector.
type Labels map[string]string

// LabelPair is one label of a series.
type LabelPair struct {
	Name, Value string
}

// Desc describes a metric family member: its name, help, constant labels
// and the names of its variable labels. A Desc made from invalid input
// carries the error, which Register returns.
type Desc struct {
	fqName    string
	help      string
	constants []LabelPair // sorted by name
	variables []string    // in the order label values are given
	// order lists every label sorted by name: index into constants
	// (isConst) or into a series' label values.
	order []labelRef
	err   error
}

type labelRef struct {
	isConst bool
	i       int
}

// NewDesc returns the description of a metric; an invalid name or label
// is reported by Register.
func NewDesc(fqName, help string, variableLabels []string, constLabels Labels) *Desc {
	d := &Desc{fqName: fqName, help: help, variables: slices.Clone(variableLabels)}
	var errs []error
	if !validMetricName(fqName) {
		errs = append(errs, fmt.Errorf("invalid metric name %q", fqName))
	}
	seen := map[string]bool{}
	check := func(name string) {
		switch {
		case !validLabelName(name):
			errs = append(errs, fmt.Errorf("metric %s: invalid label name %q", fqName, name))
		case seen[name]:
			errs = append(errs, fmt.Errorf("metric %s: duplicate label name %q", fqName, name))
		}
		seen[name] = true
	}
	for name, value := range constLabels {
		check(name)
		if !utf8.ValidString(value) {
			errs = append(errs, fmt.Errorf("metric %s: label %s: value %q is not valid UTF-8", fqName, name, value))
		}
		d.constants = append(d.constants, LabelPair{Name: name, Value: value})
	}
	slices.SortFunc(d.constants, func(a, b LabelPair) int { return strings.Compare(a.Name, b.Name) })
	for _, name := range variableLabels {
		check(name)
	}
	for i := range d.constants {
		d.order = append(d.order, labelRef{isConst: true, i: i})
	}
	for i := range d.variables {
		d.order = append(d.order, labelRef{i: i})
	}
	slices.SortFunc(d.order, func(a, b labelRef) int { return strings.Compare(d.labelName(a), d.labelName(b)) })
	d.err = errors.Join(errs...)
	return d
}

func (d *Desc) labelName(r labelRef) string {
	if r.isConst {
		return d.constants[r.i].Name
	}
	return d.variables[r.i]
}

// String is the metric's name and label names, for error messages.
func (d *Desc) String() string {
	if len(d.order) == 0 {
		return d.fqName
	}
	var names []string
	for _, r := range d.order {
		names = append(names, d.labelName(r))
	}
	return d.fqName + "{" + strings.Join(names, ",") + "}"
}

// labelPairs returns every label of the series with values lvs, sorted
// by name.
func (d *Desc) labelPairs(lvs []string) []LabelPair {
	if len(d.order) == 0 {
		return nil
	}
	pairs := make([]LabelPair, len(d.order))
	for i, r := range d.order {
		if r.isConst {
			pairs[i] = d.constants[r.i]
		} else {
			pairs[i] = LabelPair{Name: d.variables[r.i], Value: lvs[r.i]}
		}
	}
	return pairs
}

// labelNamesKey identifies the set of label names, constant or not.
func (d *Desc) labelNamesKey() string {
	var b strings.Builder
	for _, r := range d.order {
		b.WriteString(d.labelName(r))
		b.WriteByte(0)
	}
	return b.String()
}

// constKey identifies the constant label values, which must differ
// between two descs of one name.
func (d *Desc) constKey() string {
	var b strings.Builder
	for _, p := range d.constants {
		b.WriteString(p.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// BuildFQName joins the non-empty parts of a metric name with "_".
func BuildFQName(namespace, subsystem, name string) string {
	if name == "" {
		return ""
	}
	var parts []string
	for _, p := range []string{namespace, subsystem, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validLabelName accepts Prometheus label names; names starting with "__"
// are reserved for Prometheus itself.
func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
