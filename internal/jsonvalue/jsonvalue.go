// Package jsonvalue compares and copies decoded JSON values (map[string]any,
// []any, json.Number, string, bool, nil), for the device shadow on both
// sides: the node's iot/shadow and devcloud's Shadow service.
package jsonvalue

import (
	"encoding/json"
	"maps"
)

// Equal reports whether two decoded JSON values are the same; numbers
// compare by value (1 equals 1.0).
func Equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !Equal(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, errx := x.Float64()
		fy, erry := y.Float64()
		return errx == nil && erry == nil && fx == fy
	}
	return a == b // string, bool, nil
}

// Clone deep-copies a decoded JSON value.
func Clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return CloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = Clone(c)
		}
		return out
	}
	return v
}

// CloneMap deep-copies a JSON object; nil stays nil.
func CloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = Clone(v)
	}
	return out
}
