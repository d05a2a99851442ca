package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
)

// normalize turns a Go value into its decoded JSON form (map[string]any,
// []any, json.Number, string, bool, nil), the form the state is kept and
// compared in.
func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeJSON(b)
}

// decodeJSON decodes one JSON value, numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return out, nil
}

// equalJSON compares decoded JSON values; numbers compare by value.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalJSON(xv, yv) {
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
			if !equalJSON(x[i], y[i]) {
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
	default:
		return a == b
	}
}

// diffValue is the merge patch that turns old into new: for two objects
// the changed keys only (removed ones as null), otherwise new whole.
func diffValue(old, new any) any {
	om, ok1 := old.(map[string]any)
	nm, ok2 := new.(map[string]any)
	if !ok1 || !ok2 {
		return new
	}
	patch := map[string]any{}
	for k, nv := range nm {
		if ov, ok := om[k]; !ok || !equalJSON(ov, nv) {
			patch[k] = diffValue(ov, nv)
		}
	}
	for k := range om {
		if _, ok := nm[k]; !ok {
			patch[k] = nil
		}
	}
	return patch
}

// applyPatch merges patch into dst as the shadow service does: null
// deletes, objects merge, anything else (arrays included) replaces.
func applyPatch(dst, patch map[string]any) {
	for k, pv := range patch {
		if pv == nil {
			delete(dst, k)
			continue
		}
		pm, ok := pv.(map[string]any)
		if !ok {
			dst[k] = cloneJSON(pv)
			continue
		}
		dm, ok := dst[k].(map[string]any)
		if !ok {
			dm = map[string]any{}
		}
		applyPatch(dm, pm)
		if len(dm) == 0 {
			delete(dst, k)
			continue
		}
		dst[k] = dm
	}
}

// cloneJSON deep-copies a decoded JSON value.
func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := maps.Clone(x)
		for k, c := range out {
			out[k] = cloneJSON(c)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = cloneJSON(c)
		}
		return out
	}
	return v
}

// prune removes the empty objects inside a decoded value, which the
// shadow service drops; an empty object at the top becomes nil.
func prune(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, c := range m {
		if c == nil {
			continue
		}
		if p := prune(c); p == nil {
			delete(m, k)
		} else {
			m[k] = p
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
