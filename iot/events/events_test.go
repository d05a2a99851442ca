package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

const testTopic = "edgefort/thing-1/events"

// fakeReporter records every report.
type fakeReporter struct {
	mu      sync.Mutex // guards reports and fail
	reports map[string][]Result
	fail    error
}

func newFakeReporter() *fakeReporter { return &fakeReporter{reports: make(map[string][]Result)} }

func (r *fakeReporter) Report(_ context.Context, ev Event, res Result) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.reports[ev.ID] = append(r.reports[ev.ID], res)
	return nil
}

func (r *fakeReporter) get(id string) []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.reports[id]...)
}

// newTestDispatcher returns a dispatcher on db with its own registry.
func newTestDispatcher(t *testing.T, db *store.DB, rep Reporter, mod func(*Options)) (*Dispatcher, *prom.Registry) {
	t.Helper()
	reg := prom.NewRegistry()
	o := Options{
		Store:      db,
		Registerer: reg,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if rep != nil {
		o.Reporter = rep
	}
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, reg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// counter is a handler that counts its runs per id.
type counter struct {
	mu   sync.Mutex // guards runs
	runs map[string]int
}

func newCounter() *counter { return &counter{runs: make(map[string]int)} }

func (c *counter) handle(_ context.Context, ev Event) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[ev.ID]++
	return Done(json.RawMessage(`{"ok":true}`)), nil
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

func payload(t testing.TB, id, typ, body string) []byte {
	t.Helper()
	ev := Event{ID: id, Type: typ, Time: time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)}
	if body != "" {
		ev.Body = json.RawMessage(body)
	}
	p, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustHandle(t *testing.T, d *Dispatcher, p []byte) {
	t.Helper()
	if err := d.Handle(t.Context(), testTopic, p); err != nil {
		t.Fatalf("Handle(%s) = %v; want nil", p, err)
	}
}

// value reads a counter.
func value(c prom.Counter) float64 { return promtest.Read(c) }

func outcomes(t *testing.T, reg *prom.Registry, d *Dispatcher) map[string]float64 {
	t.Helper()
	got := make(map[string]float64)
	for _, o := range []string{StatusDone, StatusFailed, StatusRejected, outcomeDuplicate, outcomeRetry} {
		if v := value(d.metrics.events.WithLabelValues(o)); v != 0 {
			got[o] = v
		}
	}
	if v := value(d.metrics.malformed); v != 0 {
		got["malformed"] = v
	}
	return got
}

func TestExactlyOnceAcrossRedeliveryAndRestart(t *testing.T) {
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	rep := newFakeReporter()
	c := newCounter()
	d, reg := newTestDispatcher(t, db, rep, nil)
	if err := d.Register("test", c.handle); err != nil {
		t.Fatal(err)
	}
	p := payload(t, "ev-1", "test", `{"x":1}`)
	for range 3 {
		mustHandle(t, d, p)
	}
	if got := c.get("ev-1"); got != 1 {
		t.Errorf("handler ran %d times; want 1", got)
	}
	want := []Result{{Status: StatusDone, Body: json.RawMessage(`{"ok":true}`)}}
	if diff := cmp.Diff(want, rep.get("ev-1")); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]float64{StatusDone: 1, outcomeDuplicate: 2}, outcomes(t, reg, d)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}

	// Restart: a new store handle and dispatcher remember the id.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = testkit.OpenStore(t, dir)
	d, _ = newTestDispatcher(t, db, rep, nil)
	if err := d.Register("test", c.handle); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, d, p)
	if got := c.get("ev-1"); got != 1 {
		t.Errorf("after restart handler ran %d times in all; want 1", got)
	}
	if got := len(rep.get("ev-1")); got != 1 {
		t.Errorf("after restart %d reports; want 1", got)
	}
}

// TestCrashMidHandler leaves the store as a process that died while the
// handler ran would: recorded received, never done.
func TestCrashMidHandler(t *testing.T) {
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	d, _ := newTestDispatcher(t, db, nil, nil)
	ev := Event{ID: "ev-crash", Type: "test"}
	if _, _, _, err := d.records.begin(ev, func(record) *Result { return nil }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = testkit.OpenStore(t, dir)
	rep := newFakeReporter()
	c := newCounter()
	d, reg := newTestDispatcher(t, db, rep, nil)
	d.Register("test", c.handle)
	p := payload(t, ev.ID, ev.Type, "")
	mustHandle(t, d, p)
	mustHandle(t, d, p)
	if got := c.get(ev.ID); got != 1 {
		t.Errorf("handler ran %d times; want 1", got)
	}
	if got := len(rep.get(ev.ID)); got != 1 {
		t.Errorf("%d reports; want 1", got)
	}
	rec, _, err := d.records.get(ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Attempts != 2 || rec.State != stateDone || !rec.Reported {
		t.Errorf("record = %+v; want 2 attempts, done, reported", rec)
	}
	if diff := cmp.Diff(map[string]float64{StatusDone: 1, outcomeDuplicate: 1}, outcomes(t, reg, d)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

// TestCrashBeforeReport leaves the store as a process that died after
// recording the result and before reporting it: the redelivery reports it
// without running the handler.
func TestCrashBeforeReport(t *testing.T) {
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	d, _ := newTestDispatcher(t, db, nil, nil)
	ev := Event{ID: "ev-unreported", Type: "test"}
	d.records.begin(ev, func(record) *Result { return nil })
	if _, err := d.records.finish(ev, Done(json.RawMessage(`1`))); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = testkit.OpenStore(t, dir)
	rep := newFakeReporter()
	c := newCounter()
	d, _ = newTestDispatcher(t, db, rep, nil)
	d.Register("test", c.handle)
	p := payload(t, ev.ID, ev.Type, "")
	mustHandle(t, d, p)
	mustHandle(t, d, p)
	if got := c.get(ev.ID); got != 0 {
		t.Errorf("handler ran %d times; want 0", got)
	}
	want := []Result{{Status: StatusDone, Body: json.RawMessage(`1`)}}
	if diff := cmp.Diff(want, rep.get(ev.ID)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}

func TestRejected(t *testing.T) {
	tests := []struct {
		name      string
		payload   string
		reportID  string // "" if nothing is to be reported
		detail    string // substring of the reported detail
		malformed bool
	}{
		{"not json", `{"id": "x1", "type": `, "", "", true},
		{"not an object", `["x1"]`, "", "", true},
		{"no id", `{"type": "test"}`, "", "", true},
		{"id too long", `{"id": "` + strings.Repeat("a", MaxIDLen+1) + `", "type": "test"}`, "", "", true},
		{"no type", `{"id": "x2"}`, "x2", "no type", true},
		{"bad time", `{"id": "x3", "type": "test", "time": "yesterday"}`, "x3", "time", true},
		{"unknown type", `{"id": "x4", "type": "reboot"}`, "x4", `unknown event type "reboot"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := testkit.OpenStore(t, t.TempDir())
			rep := newFakeReporter()
			c := newCounter()
			d, reg := newTestDispatcher(t, db, rep, nil)
			d.Register("test", c.handle)
			for range 2 {
				mustHandle(t, d, []byte(tt.payload))
			}
			if len(c.runs) != 0 {
				t.Errorf("handler ran: %v", c.runs)
			}
			want := map[string]float64{}
			if tt.malformed {
				want["malformed"] = 2
			}
			if tt.reportID == "" {
				if len(rep.reports) != 0 {
					t.Errorf("reports = %v; want none", rep.reports)
				}
			} else {
				want[StatusRejected] = 1
				want[outcomeDuplicate] = 1
				got := rep.get(tt.reportID)
				if len(got) != 1 || got[0].Status != StatusRejected || !strings.Contains(got[0].Detail, tt.detail) {
					t.Errorf("reports for %s = %+v; want one rejected, detail containing %q", tt.reportID, got, tt.detail)
				}
			}
			if diff := cmp.Diff(want, outcomes(t, reg, d)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	c := newCounter()
	d, _ := newTestDispatcher(t, db, nil, func(o *Options) { o.Retention = 3 })
	d.Register("test", c.handle)
	for i := range 5 {
		mustHandle(t, d, payload(t, fmt.Sprintf("r%d", i), "test", ""))
	}
	for i, want := range []bool{false, false, true, true, true} {
		id := fmt.Sprintf("r%d", i)
		_, found, err := d.records.get(id)
		if err != nil {
			t.Fatal(err)
		}
		if found != want {
			t.Errorf("%s remembered = %v; want %v", id, found, want)
		}
	}
	keys, err := db.Bucket(bucketName).Keys()
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{seqKey(2), seqKey(3), seqKey(4), "e/r2", "e/r3", "e/r4", metaKey}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	// A forgotten id is handled again; a remembered one is not.
	mustHandle(t, d, payload(t, "r0", "test", ""))
	mustHandle(t, d, payload(t, "r4", "test", ""))
	if got := c.get("r0"); got != 2 {
		t.Errorf("forgotten r0 ran %d times; want 2", got)
	}
	if got := c.get("r4"); got != 1 {
		t.Errorf("remembered r4 ran %d times; want 1", got)
	}
}

func TestHandlerErrors(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	rep := newFakeReporter()
	d, reg := newTestDispatcher(t, db, rep, func(o *Options) { o.MaxAttempts = 3 })
	var flaky atomic.Int32
	d.Register("flaky", func(context.Context, Event) (Result, error) {
		if flaky.Add(1) == 1 {
			return Result{}, errors.New("not now")
		}
		return Done(nil), nil
	})
	d.Register("permanent", func(context.Context, Event) (Result, error) {
		return Result{}, Permanent(errors.New("cannot ever"))
	})
	var broken atomic.Int32
	d.Register("broken", func(context.Context, Event) (Result, error) {
		broken.Add(1)
		return Result{}, errors.New("still broken")
	})
	d.Register("panics", func(context.Context, Event) (Result, error) { panic("boom") })
	d.Register("slow", func(ctx context.Context, _ Event) (Result, error) {
		<-ctx.Done()
		return Result{}, ctx.Err()
	}, WithTimeout(10*time.Millisecond))
	d.Register("bad-status", func(context.Context, Event) (Result, error) { return Result{Status: "ok"}, nil })

	ctx := t.Context()
	if err := d.Handle(ctx, testTopic, payload(t, "f1", "flaky", "")); err == nil {
		t.Error("flaky first delivery: Handle = nil; want error")
	}
	mustHandle(t, d, payload(t, "f1", "flaky", ""))
	mustHandle(t, d, payload(t, "p1", "permanent", ""))
	for i := range 3 {
		if err := d.Handle(ctx, testTopic, payload(t, "b1", "broken", "")); err == nil {
			t.Errorf("broken delivery %d: Handle = nil; want error", i)
		}
	}
	mustHandle(t, d, payload(t, "b1", "broken", "")) // the fourth attempt gives up
	mustHandle(t, d, payload(t, "b1", "broken", ""))
	if got := broken.Load(); got != 3 {
		t.Errorf("broken handler ran %d times; want 3", got)
	}
	if err := d.Handle(ctx, testTopic, payload(t, "x1", "panics", "")); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking handler: Handle = %v; want error with boom", err)
	}
	if err := d.Handle(ctx, testTopic, payload(t, "s1", "slow", "")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow handler: Handle = %v; want deadline exceeded", err)
	}
	mustHandle(t, d, payload(t, "bs1", "bad-status", ""))

	want := map[string][]Result{
		"f1":  {{Status: StatusDone}},
		"p1":  {{Status: StatusFailed, Detail: "cannot ever"}},
		"b1":  {{Status: StatusFailed, Detail: "gave up after 3 attempts: still broken"}},
		"bs1": {{Status: StatusFailed, Detail: `handler returned unknown status "ok"`}},
	}
	if diff := cmp.Diff(want, rep.reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	wantOutcomes := map[string]float64{StatusDone: 1, StatusFailed: 3, outcomeDuplicate: 1, outcomeRetry: 6}
	if diff := cmp.Diff(wantOutcomes, outcomes(t, reg, d)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestReporterFailureIsNotRetried(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	rep := newFakeReporter()
	rep.fail = errors.New("outbox closed")
	c := newCounter()
	d, _ := newTestDispatcher(t, db, rep, nil)
	d.Register("test", c.handle)
	mustHandle(t, d, payload(t, "rf", "test", ""))
	if got := value(d.metrics.reportFailures); got != 1 {
		t.Errorf("report failures = %v; want 1", got)
	}
	if got := c.get("rf"); got != 1 {
		t.Errorf("handler ran %d times; want 1", got)
	}
}

func TestRegister(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	d, _ := newTestDispatcher(t, db, nil, nil)
	h := newCounter().handle
	if err := d.Register("a", h); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		typ  string
		h    HandlerFunc
		opts []RegisterOption
	}{
		{"duplicate", "a", h, nil},
		{"empty type", "", h, nil},
		{"nil handler", "b", nil, nil},
		{"bad timeout", "c", h, []RegisterOption{WithTimeout(-time.Second)}},
	} {
		if err := d.Register(tc.typ, tc.h, tc.opts...); err == nil {
			t.Errorf("%s: Register = nil; want error", tc.name)
		}
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Options{Retention: -1, MaxAttempts: -2})
	if err == nil {
		t.Fatal("New = nil error; want one")
	}
	for _, want := range []string{"store: required", "retention: -1", "max_attempts: -2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestConcurrentDuplicates delivers 4,000 messages from 8 goroutines, 30%
// of them duplicates of events any goroutine sends, and checks that each
// event is handled and reported exactly once.
func TestConcurrentDuplicates(t *testing.T) {
	const (
		goroutines = 8
		perG       = 500
		dupShare   = 0.3
	)
	db := testkit.OpenStore(t, t.TempDir())
	rep := newFakeReporter()
	c := newCounter()
	d, reg := newTestDispatcher(t, db, rep, func(o *Options) {
		o.Logger = slog.New(slog.DiscardHandler)
	})
	var running, overlap atomic.Int32
	d.Register("test", func(ctx context.Context, ev Event) (Result, error) {
		if running.Add(1) > 1 {
			overlap.Store(1)
		}
		defer running.Add(-1)
		time.Sleep(100 * time.Microsecond) // long enough for runs to overlap
		return c.handle(ctx, ev)
	})

	unique := int(perG * (1 - dupShare))
	var all []string
	for g := range goroutines {
		for i := range unique {
			all = append(all, fmt.Sprintf("g%d-%d", g, i))
		}
	}
	plans := make([][]string, goroutines)
	for g := range goroutines {
		plan := append([]string(nil), all[g*unique:(g+1)*unique]...)
		for len(plan) < perG {
			plan = append(plan, all[rand.IntN(len(all))])
		}
		rand.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
		plans[g] = plan
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perG)
	for _, plan := range plans {
		wg.Go(func() {
			for _, id := range plan {
				if err := d.Handle(t.Context(), testTopic, payload(t, id, "test", `{}`)); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d messages, %d events in %v", goroutines*perG, len(all), time.Since(start))

	for _, id := range all {
		if got := c.get(id); got != 1 {
			t.Errorf("%s handled %d times; want 1", id, got)
		}
		if got := len(rep.get(id)); got != 1 {
			t.Errorf("%s reported %d times; want 1", id, got)
		}
	}
	if len(c.runs) != len(all) {
		t.Errorf("%d ids handled; want %d", len(c.runs), len(all))
	}
	got := outcomes(t, reg, d)
	if got[StatusDone] != float64(len(all)) || got[StatusDone]+got[outcomeDuplicate] != goroutines*perG {
		t.Errorf("outcomes = %v; want %d done, %d duplicates", got, len(all), goroutines*perG-len(all))
	}
	if overlap.Load() == 0 {
		t.Log("note: handlers never overlapped")
	}
}

// TestRedeliveryWhileRunning delivers an id again while its handler runs:
// the second delivery waits for the first instead of running it again, and
// handles it itself if the first run failed.
func TestRedeliveryWhileRunning(t *testing.T) {
	for _, firstFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("first fails %v", firstFails), func(t *testing.T) {
			db := testkit.OpenStore(t, t.TempDir())
			rep := newFakeReporter()
			d, _ := newTestDispatcher(t, db, rep, nil)
			started, release := make(chan struct{}), make(chan struct{})
			var runs atomic.Int32
			d.Register("test", func(context.Context, Event) (Result, error) {
				if runs.Add(1) == 1 {
					close(started)
					<-release
					if firstFails {
						return Result{}, errors.New("first run fails")
					}
				}
				return Done(nil), nil
			})
			p := payload(t, "w1", "test", "")
			first := make(chan error, 1)
			go func() { first <- d.Handle(t.Context(), testTopic, p) }()
			<-started
			second := make(chan error, 1)
			go func() { second <- d.Handle(t.Context(), testTopic, p) }()
			select {
			case err := <-second:
				t.Fatalf("second delivery returned %v while the first ran; want it to wait", err)
			case <-time.After(50 * time.Millisecond):
			}
			close(release)
			if err := <-first; (err != nil) != firstFails {
				t.Errorf("first Handle = %v; want error %v", err, firstFails)
			}
			if err := <-second; err != nil {
				t.Errorf("second Handle = %v; want nil", err)
			}
			wantRuns := int32(1)
			if firstFails {
				wantRuns = 2
			}
			if got := runs.Load(); got != wantRuns {
				t.Errorf("handler ran %d times; want %d", got, wantRuns)
			}
			if got := len(rep.get("w1")); got != 1 {
				t.Errorf("%d reports; want 1", got)
			}
		})
	}
}

// TestWaitingRedeliveryHonoursContext: a delivery waiting for a run of the
// same id gives up when its context ends, leaving the message unacknowledged.
func TestWaitingRedeliveryHonoursContext(t *testing.T) {
	db := testkit.OpenStore(t, t.TempDir())
	d, _ := newTestDispatcher(t, db, nil, nil)
	started, release := make(chan struct{}), make(chan struct{})
	d.Register("test", func(context.Context, Event) (Result, error) {
		close(started)
		<-release
		return Done(nil), nil
	})
	p := payload(t, "w2", "test", "")
	first := make(chan error, 1)
	go func() { first <- d.Handle(t.Context(), testTopic, p) }()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := d.Handle(ctx, testTopic, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting Handle = %v; want deadline exceeded", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first Handle = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"id":"a","type":"webhook","time":"2026-11-23T17:50:00Z","body":{"x":[1,2]}}`))
	f.Add([]byte(`{"id":"a","type":"update.check"}`))
	f.Add([]byte(`{"id":"a","type":"t","body":null,"extra":1}`))
	f.Add([]byte(`{"id":"","type":"t"}`))
	f.Add([]byte(`{"id":"a","time":"nope"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, p []byte) {
		ev, err := Parse(p)
		if err != nil {
			if len(ev.ID) > MaxIDLen {
				t.Fatalf("error %v with an id of %d bytes", err, len(ev.ID))
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatalf("Parse(%q) = %+v with an empty id or type", p, ev)
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", ev, err)
		}
		ev2, err := Parse(again)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v", p, err)
		}
		if !ev2.Time.Equal(ev.Time) || ev2.ID != ev.ID || ev2.Type != ev.Type {
			t.Fatalf("round trip changed the event: %+v -> %+v", ev, ev2)
		}
	})
}
