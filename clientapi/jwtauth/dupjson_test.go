package jwtauth

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	for _, tt := range []struct {
		json string
		dup  bool
		err  string
	}{
		{`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, false, ""},
		{` {"a":"}{,\"","b":"\\"} `, false, ""},
		{`{"a":1,"a":2}`, true, ""},
		{`{"a":1,"\u0061":2}`, true, ""},
		{`{"x":[{"k":1,"k":2}]}`, true, ""},
		{`{"a":{"b":1},"b":1}`, false, ""},
		{`{"a\"b":1,"a\u0022b":1}`, true, ""},
		{"{\"\xff\":1,\"\xfe\":2}", true, ""},
		{`[1]`, false, "not a JSON object"},
		{`null`, false, "not a JSON object"},
		{`{"a":` + strings.Repeat("[", 15) + strings.Repeat("]", 15) + `}`, false, ""},
		{`{"a":` + strings.Repeat("[", 16) + strings.Repeat("]", 16) + `}`, false, "nested deeper than 16"},
	} {
		if !json.Valid([]byte(tt.json)) {
			t.Fatalf("test input %s is not JSON", tt.json)
		}
		err := checkKeys([]byte(tt.json))
		switch {
		case tt.dup:
			if !errors.Is(err, errDuplicateKey) {
				t.Errorf("checkKeys(%s) = %v, want a duplicate key", tt.json, err)
			}
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("checkKeys(%s) = %v, want %q", tt.json, err, tt.err)
			}
		case err != nil:
			t.Errorf("checkKeys(%s) = %v, want nil", tt.json, err)
		}
	}
}

// FuzzCheckKeys: on any JSON object encoding/json decodes, checkKeys
// never panics, and finds a duplicate exactly when a decoder walk does.
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2}]}}`, `{"\u0061":1,"a":2}`, `{"a":"\"}"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if json.Unmarshal(data, &m) != nil || m == nil {
			return
		}
		err := checkKeys(data)
		want := walkDuplicate(t, data)
		if errors.Is(err, errDuplicateKey) != want && !strings.Contains(errString(err), "nested deeper") {
			t.Errorf("checkKeys(%q) = %v, decoder walk finds a duplicate: %v", data, err, want)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// walkDuplicate is the reference: a json.Decoder token walk.
func walkDuplicate(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			top := stack[len(stack)-1]
			if top.expectKey {
				if k, ok := tok.(string); ok {
					if top.keys[k] {
						return true
					}
					top.keys[k] = true
					top.expectKey = false
					continue
				}
			} else {
				top.expectKey = true // this token is the value (or its start)
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}
