package artifact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Root keys of an update module's PermittedAugmentedHeaders answer: the
// header files an augment may override fields of.
const (
	permitHeaderInfo = "header-info"
	permitTypeInfo   = "type-info"
	permitMetaData   = "meta-data"
)

// CheckPermitted checks the fields a's header-augment sets against
// permitted, the answer of the update module to the
// PermittedAugmentedHeaders query. It returns nil when every field is
// permitted, else an error naming the first field that is not (in sorted
// order).
//
// The rules are those of Mender's update module protocol ("Filtering
// header fields"):
//
//   - permitted is a JSON object whose keys are among "header-info",
//     "type-info" and "meta-data", each holding an object; an empty answer
//     permits nothing. Inside,
//     every node is an object (descend), true or [true]; anything else
//     (false, null, strings, [true, true], [false]…) makes the answer
//     invalid and the augment refused.
//   - true permits the field at that place to be set to any value that is
//     not a list or an object.
//   - [true] permits the field at that place to be set to a list of any
//     number of values that are not lists or objects.
//   - An object value in the augment is checked field by field against the
//     object at the same place in permitted; an object with no fields sets
//     nothing. Every other value needs its own true or [true].
//
// What the augment sets: every field of its type-info except "type" (a
// different type is the caller's matter, answered by the module's
// ListSupportedOriginalTypes) and every field of its meta-data. The
// header-augment's header-info is not carried in Augment (the reader reads
// it but neither applies it nor hands it on), so it overrides nothing here.
// Duplicate object keys in the augment are refused: parsers disagree on
// which one wins, and the module reads the same JSON again from its tree.
func (a *Augment) CheckPermitted(permitted string) error {
	perm, err := parsePermitted(permitted)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(a.TypeInfo)) > 0 {
		ti, err := decodeUnique(a.TypeInfo)
		if err != nil {
			return fmt.Errorf("augment %s: %w", permitTypeInfo, err)
		}
		obj, ok := ti.(map[string]any)
		if !ok {
			return fmt.Errorf("augment %s: want a JSON object", permitTypeInfo)
		}
		delete(obj, "type")
		if err := permitValue(permitTypeInfo, perm[permitTypeInfo], obj); err != nil {
			return err
		}
	}
	if len(bytes.TrimSpace(a.MetaData)) > 0 {
		md, err := decodeUnique(a.MetaData)
		if err != nil {
			return fmt.Errorf("augment %s: %w", permitMetaData, err)
		}
		if _, ok := md.(map[string]any); !ok {
			return fmt.Errorf("augment %s: want a JSON object", permitMetaData)
		}
		if err := permitValue(permitMetaData, perm[permitMetaData], md); err != nil {
			return err
		}
	}
	return nil
}

// parsePermitted parses and validates a PermittedAugmentedHeaders answer.
func parsePermitted(answer string) (map[string]any, error) {
	if strings.TrimSpace(answer) == "" {
		return map[string]any{}, nil
	}
	v, err := decodeUnique([]byte(answer))
	if err != nil {
		return nil, fmt.Errorf("PermittedAugmentedHeaders answer: %w", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("PermittedAugmentedHeaders answer: want a JSON object")
	}
	for _, k := range sortedKeys(root) {
		switch k {
		case permitHeaderInfo, permitTypeInfo, permitMetaData:
		default:
			return nil, fmt.Errorf("PermittedAugmentedHeaders answer: unknown header %q (want header-info, type-info or meta-data)", k)
		}
		if _, ok := root[k].(map[string]any); !ok {
			return nil, fmt.Errorf("PermittedAugmentedHeaders answer: %s: want an object", k)
		}
		if err := validPermNode(k, root[k]); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// validPermNode checks one node of the permission tree: true, [true], or
// an object of such nodes.
func validPermNode(path string, n any) error {
	switch n := n.(type) {
	case bool:
		if n {
			return nil
		}
	case []any:
		if len(n) == 1 && n[0] == true {
			return nil
		}
	case map[string]any:
		for _, k := range sortedKeys(n) {
			if err := validPermNode(fieldPath(path, k), n[k]); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("PermittedAugmentedHeaders answer: %s: want true, [true] or an object", path)
}

// permitValue checks that value, found at path in the augment, is within
// perm, the permission node at the same place (nil when there is none).
func permitValue(path string, perm, value any) error {
	switch v := value.(type) {
	case map[string]any:
		var sub map[string]any
		switch p := perm.(type) {
		case nil:
		case map[string]any:
			sub = p
		default:
			return fmt.Errorf("augmented header field %s is not permitted: the update module permits a plain value or a list there, not an object", path)
		}
		for _, k := range sortedKeys(v) {
			var pk any
			if sub != nil {
				pk = sub[k]
			}
			if err := permitValue(fieldPath(path, k), pk, v[k]); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if !isListPerm(perm) {
			return fmt.Errorf("augmented header field %s is not permitted by the update module (PermittedAugmentedHeaders)", path)
		}
		for _, e := range v {
			switch e.(type) {
			case map[string]any, []any:
				return fmt.Errorf("augmented header field %s is not permitted: list members must be plain values", path)
			}
		}
		return nil
	}
	if perm != true {
		return fmt.Errorf("augmented header field %s is not permitted by the update module (PermittedAugmentedHeaders)", path)
	}
	return nil
}

func isListPerm(p any) bool {
	l, ok := p.([]any)
	return ok && len(l) == 1 && l[0] == true
}

// fieldPath appends key to path, quoting keys that would make the path
// ambiguous (artifact_depends keys often hold dots).
func fieldPath(path, key string) string {
	if key == "" || strings.ContainsAny(key, ".\"[] \t\n") {
		key = fmt.Sprintf("%q", key)
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decodeUnique decodes one JSON value into maps, slices and scalars
// (numbers as json.Number), refusing duplicate object keys and trailing
// data.
func decodeUnique(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// maxJSONDepth bounds the nesting decodeValue accepts.
const maxJSONDepth = 64

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, ok := kt.(string)
			if !ok {
				return nil, errors.New("invalid JSON object key")
			}
			if _, dup := obj[k]; dup {
				return nil, fmt.Errorf("duplicate JSON key %q", k)
			}
			if obj[k], err = decodeValue(dec, depth+1); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil { // '}'
			return nil, err
		}
		return obj, nil
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			e, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, e)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, err
		}
		return list, nil
	case json.Delim('}'), json.Delim(']'):
		return nil, errors.New("unexpected JSON delimiter")
	}
	return tok, nil
}
