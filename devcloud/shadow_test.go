package devcloud

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// shadowTopics are the answer topics a device subscribes to (no
// shadow/# wildcard, as AWS advises).
func shadowTopics(thing string) []string {
	p := "$aws/things/" + thing + "/shadow/"
	return []string{
		p + "get/accepted", p + "get/rejected",
		p + "update/accepted", p + "update/rejected", p + "update/delta", p + "update/documents",
		p + "delete/accepted", p + "delete/rejected",
	}
}

func TestShadowReportDesiredDelta(t *testing.T) {
	b, v := newTestBroker(t)
	sh := NewShadow(b, nil)
	defer sh.Close()
	const P = "$aws/things/" + testThing + "/shadow/"
	d := newIoTDevice(t, b, v, testThing, shadowTopics(testThing)...)

	// No shadow yet.
	d.publish(P+"get", "")
	if r := d.await(P + "get/rejected"); jnum(jpath(r, "code")) != 404 {
		t.Fatalf("get/rejected = %v", r)
	}
	if _, ok := sh.Document(testThing); ok {
		t.Fatal("Document before any update")
	}

	// The device reports its state.
	start := time.Now()
	d.publish(P+"update", map[string]any{
		"state":       map[string]any{"reported": map[string]any{"logLevel": "info", "pollInterval": 60, "agent": map[string]any{"version": "1.0", "artifact": "a-1"}}},
		"clientToken": "r1",
	})
	acc := d.await(P + "update/accepted")
	t.Logf("report → accepted: %v", time.Since(start))
	if jnum(jpath(acc, "version")) != 1 || jpath(acc, "clientToken") != "r1" ||
		jpath(acc, "state", "reported", "logLevel") != "info" || jpath(acc, "state", "desired") != nil ||
		jnum(jpath(acc, "metadata", "reported", "agent", "version", "timestamp")) == 0 || jnum(jpath(acc, "timestamp")) == 0 {
		t.Fatalf("update/accepted = %v", acc)
	}
	docs := d.await(P + "update/documents")
	if jpath(docs, "previous") != nil || jnum(jpath(docs, "current", "version")) != 1 ||
		jpath(docs, "current", "state", "reported", "agent", "artifact") != "a-1" {
		t.Fatalf("update/documents = %v", docs)
	}
	d.quiet(P + "update/delta") // nothing desired

	// The cloud wants a different log level; pollInterval is unchanged.
	start = time.Now()
	if err := sh.SetDesired(testThing, json.RawMessage(`{"logLevel": "debug", "pollInterval": 60}`)); err != nil {
		t.Fatal(err)
	}
	delta := d.await(P + "update/delta")
	t.Logf("SetDesired → delta: %v", time.Since(start))
	if want := map[string]any{"logLevel": "debug"}; !reflect.DeepEqual(jpath(delta, "state"), want) ||
		jnum(jpath(delta, "version")) != 2 || jnum(jpath(delta, "metadata", "logLevel", "timestamp")) == 0 ||
		jpath(delta, "metadata", "pollInterval") != nil {
		t.Fatalf("update/delta = %v", delta)
	}
	doc, ok := sh.Document(testThing)
	if !ok || doc.Version != 2 || !reflect.DeepEqual(doc.State.Delta, map[string]any{"logLevel": "debug"}) ||
		doc.State.Desired["pollInterval"] != json.Number("60") {
		t.Fatalf("Document = %+v", doc)
	}
	d.await(P + "update/documents")

	// The device applies it and reports back, against the version it saw.
	d.publish(P+"update", map[string]any{"state": map[string]any{"reported": map[string]any{"logLevel": "debug"}}, "version": 2, "clientToken": "r2"})
	if acc := d.await(P + "update/accepted"); jnum(jpath(acc, "version")) != 3 || jpath(acc, "clientToken") != "r2" {
		t.Fatalf("update/accepted = %v", acc)
	}
	d.quiet(P + "update/delta")
	doc, _ = sh.Document(testThing)
	if doc.State.Delta != nil || doc.Version != 3 || doc.State.Reported["logLevel"] != "debug" || doc.State.Desired["logLevel"] != "debug" {
		t.Fatalf("Document after applying = %+v", doc)
	}

	// get returns the whole document.
	d.publish(P+"get", map[string]any{"clientToken": "g1"})
	g := d.await(P + "get/accepted")
	if jnum(jpath(g, "version")) != 3 || jpath(g, "clientToken") != "g1" || jpath(g, "state", "delta") != nil ||
		jpath(g, "state", "reported", "agent", "version") != "1.0" || jnum(jpath(g, "metadata", "desired", "logLevel", "timestamp")) == 0 {
		t.Fatalf("get/accepted = %v", g)
	}

	// A stale version is a conflict; nothing changes.
	d.publish(P+"update", map[string]any{"state": map[string]any{"reported": map[string]any{"logLevel": "warn"}}, "version": 2, "clientToken": "c1"})
	rej := d.await(P + "update/rejected")
	if jnum(jpath(rej, "code")) != 409 || jpath(rej, "message") != "Version conflict" || jpath(rej, "clientToken") != "c1" {
		t.Fatalf("update/rejected = %v", rej)
	}
	if doc, _ := sh.Document(testThing); doc.Version != 3 || doc.State.Reported["logLevel"] != "debug" {
		t.Fatalf("a conflicting update changed the shadow: %+v", doc)
	}

	// null deletes a key, reported and desired alike; a section left
	// empty goes.
	d.publish(P+"update", map[string]any{"state": map[string]any{"reported": map[string]any{"agent": map[string]any{"artifact": nil}, "pollInterval": nil}}})
	if acc := d.await(P + "update/accepted"); !reflect.DeepEqual(jpath(acc, "state", "reported", "pollInterval"), nil) ||
		jnum(jpath(acc, "metadata", "reported", "pollInterval", "timestamp")) == 0 {
		t.Fatalf("update/accepted = %v", acc)
	}
	doc, _ = sh.Document(testThing)
	if _, ok := doc.State.Reported["pollInterval"]; ok || !reflect.DeepEqual(doc.State.Reported["agent"], map[string]any{"version": "1.0"}) {
		t.Fatalf("reported after null = %v", doc.State.Reported)
	}
	if _, ok := doc.Metadata.Reported["pollInterval"]; ok {
		t.Errorf("metadata kept a deleted key: %v", doc.Metadata.Reported)
	}
	// pollInterval is desired but no longer reported: it is in the delta.
	if !reflect.DeepEqual(doc.State.Delta, map[string]any{"pollInterval": json.Number("60")}) {
		t.Errorf("delta = %v", doc.State.Delta)
	}
	if err := sh.SetDesired(testThing, json.RawMessage(`{"logLevel": null, "pollInterval": null}`)); err != nil {
		t.Fatal(err)
	}
	doc, _ = sh.Document(testThing)
	if doc.State.Desired != nil || doc.State.Delta != nil || doc.Metadata.Desired != nil || doc.Version != 5 {
		t.Fatalf("after desired nulls: %+v", doc)
	}
	d.quiet(P + "update/delta")

	// Delete, then the version carries on.
	d.publish(P+"delete", map[string]any{"clientToken": "d1"})
	if del := d.await(P + "delete/accepted"); jnum(jpath(del, "version")) != 5 || jpath(del, "clientToken") != "d1" {
		t.Fatalf("delete/accepted = %v", del)
	}
	if _, ok := sh.Document(testThing); ok {
		t.Fatal("Document after delete")
	}
	d.publish(P+"delete", "")
	if r := d.await(P + "delete/rejected"); jnum(jpath(r, "code")) != 404 {
		t.Fatalf("delete/rejected = %v", r)
	}
	d.publish(P+"update", map[string]any{"state": map[string]any{"reported": map[string]any{"x": true}}})
	if acc := d.await(P + "update/accepted"); jnum(jpath(acc, "version")) != 6 {
		t.Fatalf("update after delete = %v", acc)
	}
}

func TestShadowRejectsMalformed(t *testing.T) {
	b, v := newTestBroker(t)
	sh := NewShadow(b, nil)
	defer sh.Close()
	const P = "$aws/things/" + testThing + "/shadow/"
	d := newIoTDevice(t, b, v, testThing, shadowTopics(testThing)...)
	deep := `{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}`
	for _, tt := range []struct {
		name, body string
		code       int64
	}{
		{"not JSON", `{"state": {`, 400},
		{"not an object", `[1, 2]`, 400},
		{"no state", `{"clientToken": "m"}`, 400},
		{"state not an object", `{"state": "on", "clientToken": "m"}`, 400},
		{"reported not an object", `{"state": {"reported": 5}, "clientToken": "m"}`, 400},
		{"unknown section", `{"state": {"delta": {}}, "clientToken": "m"}`, 400},
		{"bad version", `{"state": {"reported": {}}, "version": "x", "clientToken": "m"}`, 400},
		{"null in array", `{"state": {"reported": {"a": [1, null]}}, "clientToken": "m"}`, 400},
		{"too deep", `{"state": {"reported": ` + deep + `}, "clientToken": "m"}`, 400},
		{"long clientToken", `{"state": {"reported": {}}, "clientToken": "` + strings.Repeat("t", 65) + `"}`, 400},
		{"too large", `{"state": {"reported": {"blob": "` + strings.Repeat("x", ShadowMaxStateBytes) + `"}}, "clientToken": "m"}`, 413},
		{"version of no shadow", `{"state": {"reported": {}}, "version": 1, "clientToken": "m"}`, 409},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d.t = t
			d.publish(P+"update", tt.body)
			r := d.await(P + "update/rejected")
			if jnum(jpath(r, "code")) != tt.code || jpath(r, "message") == "" {
				t.Errorf("rejected = %v, want code %d", r, tt.code)
			}
			if strings.Contains(tt.body, `"m"`) && jpath(r, "clientToken") != "m" {
				t.Errorf("clientToken not echoed: %v", r)
			}
		})
	}
	d.t = t
	if _, ok := sh.Document(testThing); ok {
		t.Error("a rejected update created the shadow")
	}
	var se *ShadowError
	if err := sh.SetDesired(testThing, json.RawMessage(`[1]`)); err == nil || !errors.As(err, &se) || se.Code != 400 {
		t.Errorf("SetDesired([1]) = %v", err)
	}
	if err := sh.SetDesired(testThing, json.RawMessage(`{`)); err == nil {
		t.Error("SetDesired of bad JSON succeeded")
	}
	// Six levels are fine.
	d.publish(P+"update", `{"state": {"reported": {"a":{"b":{"c":{"d":{"e":1}}}}}}}`)
	d.await(P + "update/accepted")
}

func TestShadowDeltaAndMerge(t *testing.T) {
	dec := func(s string) map[string]any {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tt := range []struct{ desired, reported, want string }{
		{`{"a": 1}`, `{"a": 1}`, `null`},
		{`{"a": 1}`, `{"a": 1.0}`, `null`}, // numbers by value
		{`{"a": 1}`, `{"a": 2, "b": 3}`, `{"a": 1}`},
		{`{"a": {"b": 1, "c": 2}}`, `{"a": {"b": 1}}`, `{"a": {"c": 2}}`},
		{`{"a": {"b": 1}}`, `{"a": 5}`, `{"a": {"b": 1}}`},
		{`{"l": [1, 2]}`, `{"l": [1]}`, `{"l": [1, 2]}`}, // arrays whole
		{`{"l": [1, 2]}`, `{"l": [1, 2]}`, `null`},
		{`{"a": "x"}`, `{}`, `{"a": "x"}`},
	} {
		got := shadowDelta(dec(tt.desired), dec(tt.reported))
		var want map[string]any
		if tt.want != "null" {
			want = dec(tt.want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("delta(%s, %s) = %v, want %v", tt.desired, tt.reported, got, want)
		}
	}
	sec, md := mergeSection(dec(`{"a": {"b": 1, "c": 2}, "l": [1, 2]}`), map[string]any{}, dec(`{"a": {"b": null, "d": {"e": 1}}, "l": [3]}`), 7)
	if want := dec(`{"a": {"c": 2, "d": {"e": 1}}, "l": [3]}`); !reflect.DeepEqual(sec, want) {
		t.Errorf("merge = %v, want %v", sec, want)
	}
	if jpath(md, "a", "d", "e", "timestamp") != int64(7) || jpath(md, "l", "timestamp") != int64(7) {
		t.Errorf("metadata = %v", md)
	}
	if sec, md := mergeSection(dec(`{"a": 1}`), map[string]any{}, dec(`{"a": null}`), 1); sec != nil || md != nil {
		t.Errorf("emptied section = %v, %v", sec, md)
	}
	if sec, _ := mergeSection(dec(`{"a": 1}`), nil, nil, 1); sec != nil {
		t.Errorf("null section = %v", sec)
	}
}
