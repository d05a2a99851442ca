package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/edgefort/edgefort/updater/artifact"
)

// checkMetaData refuses payload meta-data that mender-artifact's own
// reader refuses: a list holding an object or another list, at any depth
// ("List cannot contain JSON object or list"). The Mender client 3.4
// passes such meta-data to the update module as it is, but an Artifact
// that Mender's tooling calls invalid is not one to install; a module
// written against mender-artifact's rule could misread it.
func checkMetaData(h *artifact.Header) error {
	for _, p := range h.Payloads {
		where := fmt.Sprintf("payload %d: headers/%04d/meta-data", p.Index, p.Index)
		if err := checkMetaDataJSON(where, p.MetaData); err != nil {
			return err
		}
		if p.Augment != nil {
			if err := checkMetaDataJSON("header-augment: "+where, p.Augment.MetaData); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkMetaDataJSON(where string, raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if path, kind := listOfCompound(v, ""); path != "" {
		return fmt.Errorf("%s: %s is %s inside a list; a list in meta-data may hold only strings, numbers, booleans and null (mender-artifact refuses it too)", where, path, kind)
	}
	return nil
}

// listOfCompound returns the path of the first object or list found
// inside a list in v, and what it is; "" when there is none. Lists hold
// only scalars once this holds, so only objects are walked into.
func listOfCompound(v any, path string) (string, string) {
	switch v := v.(type) {
	case map[string]any:
		// In key order, so that the error names the same place every time.
		for _, k := range slices.Sorted(maps.Keys(v)) {
			e, sub := v[k], k
			if path != "" {
				sub = path + "." + k
			}
			if p, kind := listOfCompound(e, sub); p != "" {
				return p, kind
			}
		}
	case []any:
		for i, e := range v {
			sub := path + "[" + strconv.Itoa(i) + "]"
			switch e.(type) {
			case map[string]any:
				return sub, "an object"
			case []any:
				return sub, "a list"
			}
		}
	}
	return "", ""
}
