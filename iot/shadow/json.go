package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/edgefort/edgefort/internal/jsonvalue"
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
		if ov, ok := om[k]; !ok || !jsonvalue.Equal(ov, nv) {
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
			dst[k] = jsonvalue.Clone(pv)
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
