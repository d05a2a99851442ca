package jwtauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of a token's header and claims.
const maxJSONDepth = 16

var errDuplicateKey = errors.New("duplicate key")

// checkKeys refuses a key repeated in any object of data (encoding/json
// keeps the last one silently, so a signed token could mean one thing to
// us and another to a backend) and nesting deeper than maxJSONDepth. Keys
// are compared decoded, so "alg" and "\u0061lg" are the same key.
//
// data must already have been decoded by encoding/json without error: the
// scan relies on it being well-formed JSON and checks nothing else. It
// runs on every token that is not in the cache, so it walks the bytes
// once instead of through json.Decoder.Token (a quarter of an uncached
// authentication).
func checkKeys(data []byte) error {
	type frame struct {
		object bool
		keys   map[string]struct{}
	}
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	stack := make([]frame, 0, maxJSONDepth)
	expectKey := false
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{', '[':
			if len(stack) >= maxJSONDepth {
				return fmt.Errorf("nested deeper than %d", maxJSONDepth)
			}
			stack = append(stack, frame{object: data[i] == '{'})
			expectKey = data[i] == '{'
		case '}', ']':
			if len(stack) == 0 {
				return errors.New("unbalanced JSON") // not well-formed after all
			}
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].object
		case '"':
			end, escaped := stringEnd(data, i)
			if expectKey {
				key := string(data[i+1 : end])
				// Decoded as encoding/json does: escapes, and invalid
				// UTF-8 replaced by U+FFFD (so "\xff" and "\xfe" are one
				// key to it, and must be one key here).
				if escaped || !utf8.ValidString(key) {
					if err := json.Unmarshal(data[i:end+1], &key); err != nil {
						return err
					}
				}
				if len(stack) == 0 {
					return errors.New("unbalanced JSON")
				}
				top := &stack[len(stack)-1]
				if top.keys == nil {
					top.keys = make(map[string]struct{}, 8)
				}
				if _, dup := top.keys[key]; dup {
					return fmt.Errorf("%w %.40q", errDuplicateKey, key)
				}
				top.keys[key] = struct{}{}
				expectKey = false
			}
			i = end
		}
	}
	return nil
}

// stringEnd returns the index of the quote closing the JSON string that
// opens at data[start], and whether it holds an escape.
func stringEnd(data []byte, start int) (end int, escaped bool) {
	for i := start + 1; i < len(data); i++ {
		switch data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return len(data) - 1, escaped // unreachable for well-formed JSON
}

// jsonString decodes a JSON string value; ok is false for anything else.
// The common case, a string without escapes, takes no decoder.
func jsonString(raw json.RawMessage) (s string, ok bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
