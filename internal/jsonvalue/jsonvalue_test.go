package jsonvalue

import (
	"bytes"
	"encoding/json"
	"testing"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":[1,"x",null]}`, `{"b":[1,"x",null],"a":1.0}`, true},
		{`{"a":1}`, `{"a":2}`, false},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{`[1,2]`, `[2,1]`, false},
		{`"1"`, `1`, false},
		{`null`, `null`, true},
		{`{"a":{"b":true}}`, `{"a":{"b":false}}`, false},
	} {
		if got := Equal(decode(t, tc.a), decode(t, tc.b)); got != tc.want {
			t.Errorf("Equal(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCloneIsDeep(t *testing.T) {
	orig := decode(t, `{"a":{"b":[1,{"c":2}]}}`).(map[string]any)
	c := CloneMap(orig)
	c["a"].(map[string]any)["b"].([]any)[1].(map[string]any)["c"] = "changed"
	if !Equal(orig, decode(t, `{"a":{"b":[1,{"c":2}]}}`)) {
		t.Error("changing the clone changed the original")
	}
	if CloneMap(nil) != nil {
		t.Error("CloneMap(nil) is not nil")
	}
}
