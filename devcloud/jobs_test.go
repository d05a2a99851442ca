package devcloud

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// iotDevice is a thing talking the reserved-topic protocols over a real
// SigV4 connection to the broker, as the agent would: it subscribes to
// filters, publishes JSON requests and awaits answers by topic.
type iotDevice struct {
	t       *testing.T
	c       paho.Client
	msgs    chan received
	backlog []received // received but not yet awaited, in order
}

func newIoTDevice(t *testing.T, b *Broker, v *testVault, thing string, filters ...string) *iotDevice {
	t.Helper()
	s := &signer{t: t, b: b, v: v, thing: thing}
	d := &iotDevice{t: t, msgs: make(chan received, 1000)}
	o := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(thing).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).
		SetConnectTimeout(5 * time.Second).SetCustomOpenConnectionFn(s.open).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			d.msgs <- received{m.Topic(), string(m.Payload())}
		})
	d.c = paho.NewClient(o)
	t.Cleanup(func() { d.c.Disconnect(50) })
	wait(t, d.c.Connect())
	subs := make(map[string]byte, len(filters))
	for _, f := range filters {
		subs[f] = 1
	}
	tok := d.c.SubscribeMultiple(subs, nil)
	wait(t, tok)
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code != 1 {
			t.Fatalf("SUBACK for %s = %#x", f, code)
		}
	}
	return d
}

// publish sends body (a string as is, anything else as JSON) at QoS 1.
func (d *iotDevice) publish(topic string, body any) {
	d.t.Helper()
	var payload []byte
	switch x := body.(type) {
	case string:
		payload = []byte(x)
	default:
		var err error
		if payload, err = json.Marshal(x); err != nil {
			d.t.Fatal(err)
		}
	}
	wait(d.t, d.c.Publish(topic, 1, false, payload))
}

// await returns the next message on topic, decoded (numbers as
// json.Number); messages on other topics are kept for later awaits.
func (d *iotDevice) await(topic string) map[string]any {
	d.t.Helper()
	for i, m := range d.backlog {
		if m.topic == topic {
			d.backlog = append(d.backlog[:i:i], d.backlog[i+1:]...)
			return decodeIoTTest(d.t, m.payload)
		}
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-d.msgs:
			if m.topic == topic {
				return decodeIoTTest(d.t, m.payload)
			}
			d.backlog = append(d.backlog, m)
		case <-deadline:
			d.t.Fatalf("no message on %s (backlog %v)", topic, d.backlog)
			return nil
		}
	}
}

// quiet fails if a message arrives on topic within a short while.
func (d *iotDevice) quiet(topic string) {
	d.t.Helper()
	for _, m := range d.backlog {
		if m.topic == topic {
			d.t.Fatalf("unexpected message on %s: %s", topic, m.payload)
		}
	}
	deadline := time.After(200 * time.Millisecond)
	for {
		select {
		case m := <-d.msgs:
			if m.topic == topic {
				d.t.Fatalf("unexpected message on %s: %s", topic, m.payload)
			}
			d.backlog = append(d.backlog, m)
		case <-deadline:
			return
		}
	}
}

func decodeIoTTest(t *testing.T, payload string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", payload, err)
	}
	return m
}

// path walks decoded JSON by keys.
func jpath(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func jnum(v any) int64 {
	n, _ := v.(json.Number)
	i, _ := n.Int64()
	return i
}

func TestJobsLifecycle(t *testing.T) {
	b, v := newTestBroker(t)
	jobs := NewJobs(b, nil)
	defer jobs.Close()
	const T = "$aws/things/" + testThing + "/jobs/"
	d := newIoTDevice(t, b, v, testThing, T+"#")

	// A created job is announced on notify-next with its document.
	start := time.Now()
	if err := jobs.Create(testThing, "job-1", json.RawMessage(`{"operation": "webhook", "body": {"x": 1}}`)); err != nil {
		t.Fatal(err)
	}
	nn := d.await(T + "notify-next")
	t.Logf("create → notify-next: %v", time.Since(start))
	if jpath(nn, "execution", "jobId") != "job-1" || jpath(nn, "execution", "status") != JobQueued ||
		jnum(jpath(nn, "execution", "versionNumber")) != 1 || jpath(nn, "execution", "jobDocument", "operation") != "webhook" ||
		jnum(jpath(nn, "timestamp")) == 0 {
		t.Fatalf("notify-next = %v", nn)
	}
	if l := d.await(T + "notify"); len(jpath(l, "jobs", JobQueued).([]any)) != 1 {
		t.Errorf("notify = %v", l)
	}

	// A second job is queued behind it: notify, but no notify-next.
	if err := jobs.Create(testThing, "job-2", json.RawMessage(`{"operation": "fail-me"}`)); err != nil {
		t.Fatal(err)
	}
	d.await(T + "notify")
	d.quiet(T + "notify-next")

	// start-next moves the oldest to IN_PROGRESS.
	start = time.Now()
	d.publish(T+"start-next", map[string]any{"clientToken": "t1", "statusDetails": map[string]string{"step": "starting"}})
	acc := d.await(T + "start-next/accepted")
	t.Logf("start-next → accepted: %v", time.Since(start))
	if jpath(acc, "clientToken") != "t1" || jpath(acc, "execution", "jobId") != "job-1" ||
		jpath(acc, "execution", "status") != JobInProgress || jnum(jpath(acc, "execution", "versionNumber")) != 2 ||
		jnum(jpath(acc, "execution", "startedAt")) == 0 || jpath(acc, "execution", "statusDetails", "step") != "starting" ||
		jpath(acc, "execution", "jobDocument", "body", "x") != json.Number("1") {
		t.Fatalf("start-next/accepted = %v", acc)
	}
	if e, _ := jobs.Execution(testThing, "job-1"); e.Status != JobInProgress || e.VersionNumber != 2 || e.StartedAt == 0 {
		t.Errorf("Execution = %+v", e)
	}
	d.quiet(T + "notify-next") // job-1 was already the next

	// start-next again returns the same IN_PROGRESS execution.
	d.publish(T+"start-next", map[string]any{"clientToken": "t1b"})
	if acc := d.await(T + "start-next/accepted"); jpath(acc, "execution", "jobId") != "job-1" || jnum(jpath(acc, "execution", "versionNumber")) != 2 {
		t.Fatalf("second start-next/accepted = %v", acc)
	}

	// A stale expectedVersion is refused with the current state.
	d.publish(T+"job-1/update", map[string]any{"status": JobInProgress, "expectedVersion": 1, "clientToken": "t2"})
	rej := d.await(T + "job-1/update/rejected")
	if jpath(rej, "code") != JobErrVersionMismatch || jpath(rej, "clientToken") != "t2" ||
		jnum(jpath(rej, "executionState", "versionNumber")) != 2 || jpath(rej, "executionState", "status") != JobInProgress {
		t.Fatalf("update/rejected = %v", rej)
	}

	// Progress, then SUCCEEDED with the right versions.
	d.publish(T+"job-1/update", map[string]any{"status": JobInProgress, "expectedVersion": 2, "statusDetails": map[string]string{"progress": "50%"}, "clientToken": "t3"})
	if acc := d.await(T + "job-1/update/accepted"); jpath(acc, "clientToken") != "t3" || jpath(acc, "executionState") != nil {
		t.Fatalf("progress update/accepted = %v", acc)
	}
	start = time.Now()
	d.publish(T+"job-1/update", map[string]any{
		"status": JobSucceeded, "expectedVersion": 3, "statusDetails": map[string]string{"result": "ok"},
		"includeJobExecutionState": true, "includeJobDocument": true, "clientToken": "t4",
	})
	acc = d.await(T + "job-1/update/accepted")
	t.Logf("update → accepted: %v", time.Since(start))
	if jpath(acc, "clientToken") != "t4" || jpath(acc, "executionState", "status") != JobSucceeded ||
		jnum(jpath(acc, "executionState", "versionNumber")) != 4 || jpath(acc, "executionState", "statusDetails", "result") != "ok" ||
		jpath(acc, "jobDocument", "operation") != "webhook" {
		t.Fatalf("update/accepted = %v", acc)
	}
	e, ok := jobs.Execution(testThing, "job-1")
	if !ok || e.Status != JobSucceeded || e.VersionNumber != 4 || e.StatusDetails["result"] != "ok" || e.LastUpdatedAt < e.StartedAt {
		t.Errorf("Execution = %+v, %v", e, ok)
	}
	// ... and the next job is announced.
	if nn := d.await(T + "notify-next"); jpath(nn, "execution", "jobId") != "job-2" || jpath(nn, "execution", "status") != JobQueued {
		t.Fatalf("notify-next after SUCCEEDED = %v", nn)
	}

	// A terminal execution accepts no update.
	d.publish(T+"job-1/update", map[string]any{"status": JobInProgress, "clientToken": "t5"})
	rej = d.await(T + "job-1/update/rejected")
	if jpath(rej, "code") != JobErrInvalidStateTransition || jpath(rej, "executionState", "status") != JobSucceeded || jpath(rej, "clientToken") != "t5" {
		t.Fatalf("update after terminal: %v", rej)
	}
	if e, _ := jobs.Execution(testThing, "job-1"); e.Status != JobSucceeded || e.VersionNumber != 4 {
		t.Errorf("terminal execution changed: %+v", e)
	}

	// List and describe.
	d.publish(T+"get", map[string]any{"clientToken": "t6"})
	l := d.await(T + "get/accepted")
	q, _ := jpath(l, "queuedJobs").([]any)
	ip, _ := jpath(l, "inProgressJobs").([]any)
	if jpath(l, "clientToken") != "t6" || len(q) != 1 || jpath(q[0], "jobId") != "job-2" || ip == nil || len(ip) != 0 {
		t.Fatalf("get/accepted = %v", l)
	}
	d.publish(T+"job-2/get", map[string]any{"clientToken": "t7"})
	if g := d.await(T + "job-2/get/accepted"); jpath(g, "execution", "jobDocument", "operation") != "fail-me" || jpath(g, "clientToken") != "t7" {
		t.Fatalf("job-2/get/accepted = %v", g)
	}
	d.publish(T+"$next/get", map[string]any{"includeJobDocument": false})
	if g := d.await(T + "$next/get/accepted"); jpath(g, "execution", "jobId") != "job-2" || jpath(g, "execution", "jobDocument") != nil {
		t.Fatalf("$next/get/accepted = %v", g)
	}
	d.publish(T+"nope/get", map[string]any{"clientToken": "t8"})
	if r := d.await(T + "nope/get/rejected"); jpath(r, "code") != JobErrResourceNotFound || jpath(r, "clientToken") != "t8" {
		t.Fatalf("nope/get/rejected = %v", r)
	}

	// FAILED, straight from QUEUED, keeps its statusDetails; the queue is
	// then empty: notify-next without execution.
	d.publish(T+"job-2/update", map[string]any{"status": JobFailed, "statusDetails": map[string]string{"reason": "disk full"}, "clientToken": "t9"})
	d.await(T + "job-2/update/accepted")
	if nn := d.await(T + "notify-next"); jpath(nn, "execution") != nil || jnum(jpath(nn, "timestamp")) == 0 {
		t.Fatalf("notify-next on empty queue = %v", nn)
	}
	if e, _ := jobs.Execution(testThing, "job-2"); e.Status != JobFailed || e.StatusDetails["reason"] != "disk full" {
		t.Errorf("Execution job-2 = %+v", e)
	}

	// start-next with nothing pending: accepted, no execution.
	d.publish(T+"start-next", map[string]any{"clientToken": "t10"})
	if acc := d.await(T + "start-next/accepted"); jpath(acc, "execution") != nil || jpath(acc, "clientToken") != "t10" {
		t.Fatalf("empty start-next/accepted = %v", acc)
	}

	// REJECTED, as for an unknown operation.
	if err := jobs.Create(testThing, "job-3", json.RawMessage(`{"operation": "frobnicate"}`)); err != nil {
		t.Fatal(err)
	}
	if nn := d.await(T + "notify-next"); jpath(nn, "execution", "jobId") != "job-3" {
		t.Fatalf("notify-next = %v", nn)
	}
	d.publish(T+"start-next", map[string]any{})
	d.await(T + "start-next/accepted")
	d.publish(T+"job-3/update", map[string]any{"status": JobRejected, "statusDetails": map[string]string{"reason": "unknown operation frobnicate"}, "expectedVersion": 2})
	d.await(T + "job-3/update/accepted")
	if e, _ := jobs.Execution(testThing, "job-3"); e.Status != JobRejected || e.VersionNumber != 3 || e.StatusDetails["reason"] == "" {
		t.Errorf("Execution job-3 = %+v", e)
	}
	if nn := d.await(T + "notify-next"); jpath(nn, "execution") != nil {
		t.Fatalf("notify-next = %v", nn)
	}
}

func TestJobsRejectsBadRequests(t *testing.T) {
	b, v := newTestBroker(t)
	jobs := NewJobs(b, nil)
	defer jobs.Close()
	const T = "$aws/things/" + testThing + "/jobs/"
	d := newIoTDevice(t, b, v, testThing, T+"#")
	if err := jobs.Create(testThing, "j", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, body, code string
	}{
		{"invalid JSON", `{"status":`, JobErrInvalidJSON},
		{"wrong type", `{"status": 3, "clientToken": "c"}`, JobErrInvalidJSON},
		{"no status", `{"clientToken": "c"}`, JobErrInvalidRequest},
		{"service-only status", `{"status": "CANCELED", "clientToken": "c"}`, JobErrInvalidRequest},
		{"other execution number", `{"status": "IN_PROGRESS", "executionNumber": 7, "clientToken": "c"}`, JobErrResourceNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d.t = t
			d.publish(T+"j/update", tt.body)
			r := d.await(T + "j/update/rejected")
			if jpath(r, "code") != tt.code {
				t.Errorf("rejected = %v, want code %s", r, tt.code)
			}
			if tt.code != JobErrInvalidJSON || strings.Contains(tt.body, "clientToken") {
				if jpath(r, "clientToken") != "c" {
					t.Errorf("clientToken not echoed: %v", r)
				}
			}
		})
	}
	d.t = t
	d.publish(T+"missing/update", `{"status": "SUCCEEDED"}`)
	if r := d.await(T + "missing/update/rejected"); jpath(r, "code") != JobErrResourceNotFound {
		t.Errorf("rejected = %v", r)
	}
	if e, _ := jobs.Execution(testThing, "j"); e.Status != JobQueued || e.VersionNumber != 1 {
		t.Errorf("rejected requests changed the execution: %+v", e)
	}

	// The cloud side's own checks.
	for _, tt := range []struct {
		thing, id, doc string
	}{
		{testThing, "j", `{}`},      // duplicate
		{testThing, "bad id", `{}`}, // job ID syntax
		{testThing, "k", `[1]`},     // not an object
		{testThing, "k", `{`},       // not JSON
		{"a/b", "k", `{}`},          // thing name
		{testThing, strings.Repeat("x", 65), `{}`},
	} {
		if err := jobs.Create(tt.thing, tt.id, json.RawMessage(tt.doc)); err == nil {
			t.Errorf("Create(%q, %q, %s) succeeded", tt.thing, tt.id, tt.doc)
		}
	}
	if _, ok := jobs.Execution(testThing, "k"); ok {
		t.Error("a refused Create left an execution")
	}
}

func TestJobsCancelAndOtherThings(t *testing.T) {
	b, v := newTestBroker(t)
	jobs := NewJobs(b, nil)
	defer jobs.Close()
	const T = "$aws/things/" + testThing + "/jobs/"
	d := newIoTDevice(t, b, v, testThing, T+"notify-next", T+"get/accepted")
	other := make(chan string, 10)
	defer b.Subscribe("$aws/things/node-2/jobs/#", func(topic string, _ []byte) { other <- topic })()

	if err := jobs.Create("node-2", "x", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Create(testThing, "c", json.RawMessage(`{"a": 1}`)); err != nil {
		t.Fatal(err)
	}
	if nn := d.await(T + "notify-next"); jpath(nn, "execution", "jobId") != "c" {
		t.Fatalf("notify-next = %v", nn)
	}
	if err := jobs.Cancel(testThing, "c"); err != nil {
		t.Fatal(err)
	}
	if nn := d.await(T + "notify-next"); jpath(nn, "execution") != nil {
		t.Fatalf("notify-next after cancel = %v", nn)
	}
	if e, _ := jobs.Execution(testThing, "c"); e.Status != JobCanceled || !JobTerminal(e.Status) {
		t.Errorf("Execution = %+v", e)
	}
	if err := jobs.Cancel(testThing, "c"); err == nil {
		t.Error("Cancel of a canceled execution succeeded")
	}
	// The other thing's job is not listed for this one.
	d.publish(T+"get", "")
	if l := d.await(T + "get/accepted"); len(jpath(l, "queuedJobs").([]any)) != 0 {
		t.Errorf("get/accepted = %v", l)
	}
	if e, ok := jobs.Execution("node-2", "x"); !ok || e.Status != JobQueued {
		t.Errorf("node-2 execution = %+v", e)
	}
	select {
	case topic := <-other:
		if !strings.HasPrefix(topic, "$aws/things/node-2/jobs/notify") {
			t.Errorf("node-2 got %s", topic)
		}
	case <-time.After(time.Second):
		t.Error("node-2 got no notification")
	}
}

// TestJobsShadowCallbackReentry: a cloud-side b.Subscribe callback runs
// on the goroutine that publishes the answer, and may call back into the
// services (here: chain a job on the SUCCEEDED answer, read a shadow on
// the accepted update) without deadlocking.
func TestJobsShadowCallbackReentry(t *testing.T) {
	b, v := newTestBroker(t)
	jobs := NewJobs(b, nil)
	defer jobs.Close()
	sh := NewShadow(b, nil)
	defer sh.Close()
	const T = "$aws/things/" + testThing + "/jobs/"
	const P = "$aws/things/" + testThing + "/shadow/"
	d := newIoTDevice(t, b, v, testThing, T+"#", P+"update/accepted")
	seen := make(chan string, 10)
	defer b.Subscribe(T+"+/update/accepted", func(topic string, _ []byte) {
		if e, _ := jobs.Execution(testThing, "first"); e.Status == JobSucceeded {
			if err := jobs.Create(testThing, "second", json.RawMessage(`{}`)); err != nil {
				t.Error(err)
			}
		}
		seen <- topic
	})()
	defer b.Subscribe(P+"update/accepted", func(topic string, _ []byte) {
		if doc, ok := sh.Document(testThing); !ok || doc.Version != 1 {
			t.Errorf("Document in callback = %+v, %v", doc, ok)
		}
		seen <- topic
	})()

	if err := jobs.Create(testThing, "first", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	d.publish(T+"first/update", map[string]any{"status": JobSucceeded})
	d.await(T + "first/update/accepted")
	if nn := d.await(T + "notify-next"); jpath(nn, "execution", "jobId") != "first" {
		t.Fatalf("notify-next = %v", nn)
	}
	// The queue emptied, then the chained job arrived: in that order.
	if nn := d.await(T + "notify-next"); jpath(nn, "execution") != nil {
		t.Fatalf("notify-next = %v", nn)
	}
	if nn := d.await(T + "notify-next"); jpath(nn, "execution", "jobId") != "second" {
		t.Fatalf("notify-next = %v", nn)
	}
	d.publish(P+"update", `{"state": {"reported": {"a": 1}}}`)
	d.await(P + "update/accepted")
	for range 2 {
		select {
		case <-seen:
		case <-time.After(5 * time.Second):
			t.Fatal("callback did not run")
		}
	}
}
