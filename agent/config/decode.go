package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgefort/edgefort/clientapi"
)

// decoder fills a Go value from a YAML node tree. It is strict (unknown
// fields are errors) and, unlike yaml.Node.Decode, it keeps going after a
// problem so that one run reports everything, and it names every problem by
// its field path as well as its line.
type decoder struct {
	probs *problems
	// lines maps each field path seen in the file to the line of its key,
	// so that validation problems can be placed in the file.
	lines map[string]int
	// nodes counts the nodes decoded so far, a value reached through an
	// alias once per use; past maxNodes the decoder stops.
	nodes   int
	stopped bool
}

// maxNodes bounds the nodes one file decodes to. The parser keeps an
// alias as a pointer to its anchor's node, but decoding follows it, so a
// few KiB of aliases to aliases (or to a long list, from every entry of
// another list) expand to millions of values: 32 KiB took 26 s and 2.6 GB.
// Aliases stay allowed, since a file may share one SSL block between
// targets, and are bounded instead: a complete example is about 300 nodes
// and a node with a thousand virtual hosts and targets stays far below
// the bound, while at the bound the decoder's field-to-line map stays in
// the tens of MiB. The 1 MiB file limit bounds the parser before this.
const maxNodes = 100_000

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.stopped {
		return
	}
	if d.nodes++; d.nodes > maxNodes {
		d.stopped = true
		d.probs.add(n.Line, path, "the file expands to more than %d YAML nodes, counting an alias's whole value at each use; the decoder stops here", maxNodes)
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default in place
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d.duration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && v.Type() == reflect.TypeFor[clientapi.Addresses]() {
			v.Set(reflect.ValueOf(clientapi.Addresses{n.Value})) // one address may be written as a string
			return
		}
		d.sequence(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.String:
		if d.expectScalar(n, path, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if !d.expectScalar(n, path, "true or false") {
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil || n.Tag != "!!bool" {
			d.probs.add(n.Line, path, "expected true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		if !d.expectScalar(n, path, "an integer") {
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || n.Tag != "!!int" || v.OverflowInt(i) {
			d.probs.add(n.Line, path, "expected an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if !d.expectScalar(n, path, "a number") {
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || (n.Tag != "!!float" && n.Tag != "!!int") {
			d.probs.add(n.Line, path, "expected a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		// Only reachable if a field of an unsupported kind is added to Config.
		panic(fmt.Sprintf("config: field %s has unsupported kind %s", path, v.Kind()))
	}
}

func (d *decoder) expectScalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.probs.add(n.Line, path, "expected %s, got %s", want, kindName(n))
		return false
	}
	return true
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if !d.expectScalar(n, path, "a duration") {
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.probs.add(n.Line, path, "expected a duration such as 30s, 5m or 1h30m, got %q", n.Value)
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.probs.add(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := structFields(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && !d.stopped; i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		name := key.Value
		fieldPath := join(path, name)
		if key.Kind != yaml.ScalarNode || name == "<<" {
			d.probs.add(key.Line, path, "unsupported key %q (merge keys and complex keys are not allowed)", name)
			continue
		}
		idx, ok := fields[name]
		if !ok {
			d.probs.add(key.Line, fieldPath, "unknown field (%s accepts: %s)", describe(path), fieldNames(sortedKeys(fields)))
			continue
		}
		if seen[name] {
			d.probs.add(key.Line, fieldPath, "field set twice (first on line %d)", d.lines[fieldPath])
			continue
		}
		seen[name] = true
		d.lines[fieldPath] = key.Line
		d.decode(val, v.Field(idx), fieldPath)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.probs.add(n.Line, path, "expected a list, got %s", kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		if d.stopped {
			return
		}
		p := index(path, i)
		d.lines[p] = item.Line
		d.decode(item, out.Index(i), p)
	}
	v.Set(out)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.probs.add(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && !d.stopped; i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		p := join(path, key.Value)
		if key.Kind != yaml.ScalarNode || key.Value == "<<" {
			d.probs.add(key.Line, path, "unsupported key %q", key.Value)
			continue
		}
		if _, dup := d.lines[p]; dup {
			d.probs.add(key.Line, p, "key set twice (first on line %d)", d.lines[p])
			continue
		}
		d.lines[p] = key.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, elem, p)
		out.SetMapIndex(reflect.ValueOf(key.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(out)
}

// structFields maps yaml names to field indexes.
func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func describe(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// fieldNames lists the fields a mapping accepts. It is not a string, so
// that problems.add shows it whole: it comes from Config, not the file.
type fieldNames []string

func (f fieldNames) String() string { return strings.Join(f, ", ") }

// kindName describes what a node holds, for "expected X, got Y". A scalar
// is shown as its value, clipped like any other value from the file.
func kindName(n *yaml.Node) fmt.Stringer { return nodeKind{n} }

type nodeKind struct{ n *yaml.Node }

func (k nodeKind) String() string {
	n := k.n
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", echoed(n.Value))
	default:
		return "an unsupported node"
	}
}
