package outbox

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

// newTestOutbox returns an outbox on a fresh store in t.TempDir, with its own
// registry, unless opts says otherwise.
func newTestOutbox(t *testing.T, opts Options) *Outbox {
	t.Helper()
	if opts.Store == nil {
		opts.Store = testkit.OpenStore(t, t.TempDir())
	}
	if opts.Registerer == nil {
		opts.Registerer = prom.NewPedanticRegistry()
	}
	o, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return o
}

// logBuffer collects JSON log records; safe for concurrent use.
type logBuffer struct{ testkit.SyncBuffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records at level or above whose message contains msg.
func (b *logBuffer) records(t *testing.T, level slog.Level, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		var l slog.Level
		if err := l.UnmarshalText([]byte(r["level"].(string))); err != nil {
			t.Fatal(err)
		}
		if l >= level && strings.Contains(r["msg"].(string), msg) {
			out = append(out, r)
		}
	}
	return out
}

// queuedKeys returns the keys of the stored items in queue order.
func queuedKeys(t *testing.T, db *store.DB) []string {
	t.Helper()
	var keys []string
	err := db.Bucket(bucketName).ForEach(func(key string, raw json.RawMessage) error {
		if key == metaKey {
			return nil
		}
		var r record
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		keys = append(keys, r.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestEnqueueDurable(t *testing.T) {
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := newTestOutbox(t, Options{Store: db, Now: func() time.Time { return clock }})
	items := []Item{
		{Stream: "jobs", Type: "job.status", Priority: High, Body: json.RawMessage(`{"state":"running"}`)},
		{Stream: "health", Type: "health", Key: "health-1"},
		{Stream: "jobs", Type: "job.status", Priority: High, Body: json.RawMessage(`{"state":"done"}`)},
		{Stream: "health", Type: "health", Time: clock.Add(-time.Hour)},
	}
	var want []string
	for _, it := range items {
		key, err := o.Enqueue(t.Context(), it)
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		want = append(want, key)
	}
	if want[1] != "health-1" {
		t.Errorf("Enqueue with Key returned %q; want health-1", want[1])
	}
	for _, k := range []string{want[0], want[2], want[3]} {
		if b, err := base64.RawURLEncoding.DecodeString(k); err != nil || len(b) != 16 {
			t.Errorf("generated key %q is not 128 bits of base64url (%v)", k, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = testkit.OpenStore(t, dir)
	o = newTestOutbox(t, Options{Store: db})
	if got := o.Len(); got != len(items) {
		t.Errorf("Len after reopen = %d; want %d", got, len(items))
	}
	if diff := cmp.Diff(want, queuedKeys(t, db)); diff != "" {
		t.Errorf("queue after reopen (-want +got):\n%s", diff)
	}
	batch, err := o.head(o.batch)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := batch[0].rec.Time, clock; !got.Equal(want) {
		t.Errorf("default time = %v; want %v (Options.Now)", got, want)
	}
	if got, want := batch[3].rec.Time, clock.Add(-time.Hour); !got.Equal(want) {
		t.Errorf("given time = %v; want %v", got, want)
	}
	if got := string(batch[2].rec.Body); got != `{"state":"done"}` {
		t.Errorf("body = %s", got)
	}
	// The sequence carries on after the reopen.
	if _, err := o.Enqueue(t.Context(), Item{Stream: "s", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	keys, err := db.Bucket(bucketName).Keys()
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{seqKey(0), seqKey(1), seqKey(2), seqKey(3), seqKey(4), metaKey}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("store keys (-want +got):\n%s", diff)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	o := newTestOutbox(t, Options{})
	tests := []struct {
		name string
		it   Item
		want string
	}{
		{"no stream", Item{Type: "t"}, "stream: required"},
		{"no type", Item{Stream: "s"}, "type: required"},
		{"bad priority", Item{Stream: "s", Type: "t", Priority: 7}, "priority: unknown (7)"},
		{"bad body", Item{Stream: "s", Type: "t", Body: json.RawMessage(`{`)}, "body: not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := o.Enqueue(t.Context(), tt.it)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Enqueue = %v; want an error containing %q", err, tt.want)
			}
		})
	}
	if o.Len() != 0 {
		t.Errorf("Len = %d after invalid items; want 0", o.Len())
	}
}

func TestNewInvalid(t *testing.T) {
	_, err := New(Options{MaxItems: -1, Backoff: Backoff{Initial: time.Minute, Max: time.Second}})
	for _, want := range []string{"store: required", "max_items: negative", "backoff.max: 1s is less than backoff.initial 1m0s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v; want an error containing %q", err, want)
		}
	}
}

// TestBound fills a small queue with mixed priorities and checks what each
// Enqueue past the bound drops, with its metric and log.
func TestBound(t *testing.T) {
	type drop struct {
		Level slog.Level
		Key   string
	}
	tests := []struct {
		name     string
		max      int
		enqueue  []string // key; a leading "h" means high priority
		wantErr  []string // keys whose Enqueue returns ErrFull
		want     []string // queued keys afterwards
		wantDrop []drop   // in order
		wantLow  float64
		wantHigh float64
	}{
		{
			name:     "oldest low first",
			max:      4,
			enqueue:  []string{"h1", "l1", "h2", "l2", "h3", "l3", "h4"},
			want:     []string{"h1", "h2", "h3", "h4"},
			wantDrop: []drop{{slog.LevelWarn, "l1"}, {slog.LevelWarn, "l2"}, {slog.LevelWarn, "l3"}},
			wantLow:  3,
		},
		{
			name:     "then oldest high",
			max:      3,
			enqueue:  []string{"h1", "l1", "h2", "h3", "h4"},
			want:     []string{"h2", "h3", "h4"},
			wantDrop: []drop{{slog.LevelWarn, "l1"}, {slog.LevelError, "h1"}},
			wantLow:  1,
			wantHigh: 1,
		},
		{
			name:     "low into a queue of high items drops itself",
			max:      2,
			enqueue:  []string{"h1", "h2", "l1"},
			wantErr:  []string{"l1"},
			want:     []string{"h1", "h2"},
			wantDrop: []drop{{slog.LevelWarn, "l1"}},
			wantLow:  1,
		},
		{
			name:    "room left",
			max:     3,
			enqueue: []string{"l1", "h1", "l2"},
			want:    []string{"l1", "h1", "l2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			db := testkit.OpenStore(t, t.TempDir())
			o := newTestOutbox(t, Options{Store: db, MaxItems: tt.max, Logger: logs.logger()})
			var gotErr []string
			for _, k := range tt.enqueue {
				p := Low
				if k[0] == 'h' {
					p = High
				}
				_, err := o.Enqueue(t.Context(), Item{Stream: "s", Type: "t", Priority: p, Key: k})
				if errors.Is(err, ErrFull) {
					gotErr = append(gotErr, k)
				} else if err != nil {
					t.Fatalf("Enqueue %s: %v", k, err)
				}
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("ErrFull for (-want +got):\n%s", diff)
			}
			checkQueued(t, o, db, tt.want)
			var gotDrop []drop
			for _, r := range logs.records(t, slog.LevelWarn, "dropped") {
				var l slog.Level
				l.UnmarshalText([]byte(r["level"].(string)))
				gotDrop = append(gotDrop, drop{l, r[logKeyKey].(string)})
				if r[logKeyStream] != "s" || r[logKeyType] != "t" {
					t.Errorf("drop log %v does not name stream and type", r)
				}
			}
			if diff := cmp.Diff(tt.wantDrop, gotDrop); diff != "" {
				t.Errorf("drop logs (-want +got):\n%s", diff)
			}
			for reason, want := range map[string]float64{dropFullLow: tt.wantLow, dropFullHigh: tt.wantHigh} {
				if got := metricValue(t, o, "edgefort_cloud_outbox_dropped_total", reason); got != want {
					t.Errorf("dropped_total{reason=%q} = %v; want %v", reason, got, want)
				}
			}
		})
	}
}

// TestBoundAfterReopen checks that the priorities survive a reopen: the
// drop after it still picks the oldest low item.
func TestBoundAfterReopen(t *testing.T) {
	dir := t.TempDir()
	db := testkit.OpenStore(t, dir)
	o := newTestOutbox(t, Options{Store: db, MaxItems: 3})
	for _, k := range []string{"h1", "h2", "l1"} {
		p := Low
		if k[0] == 'h' {
			p = High
		}
		if _, err := o.Enqueue(t.Context(), Item{Stream: "s", Type: "t", Priority: p, Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = testkit.OpenStore(t, dir)
	o = newTestOutbox(t, Options{Store: db, MaxItems: 3})
	if _, err := o.Enqueue(t.Context(), Item{Stream: "s", Type: "t", Priority: High, Key: "h3"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"h1", "h2", "h3"}, queuedKeys(t, db)); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prom.NewPedanticRegistry()
	o := newTestOutbox(t, Options{Registerer: reg})
	if _, err := o.Enqueue(t.Context(), Item{Stream: "s", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range families {
		got[f.Name] = len(f.Series)
	}
	want := map[string]int{
		"edgefort_cloud_outbox_queued":              1,
		"edgefort_cloud_outbox_sent_total":          1,
		"edgefort_cloud_outbox_dropped_total":       4, // one per reason, from zero
		"edgefort_cloud_outbox_rejected_total":      1,
		"edgefort_cloud_outbox_send_failures_total": 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series per metric (-want +got):\n%s", diff)
	}
	if got := metricValue(t, o, "edgefort_cloud_outbox_queued", ""); got != 1 {
		t.Errorf("queued = %v; want 1", got)
	}
	// A second outbox on the same registry fails, and leaves the first's
	// metrics registered.
	if _, err := New(Options{Store: o.db, Registerer: reg}); err == nil {
		t.Error("second New on the same registry succeeded")
	}
}

// metricValue returns the value of the named metric of o; reason selects a
// dropped_total series.
func metricValue(t *testing.T, o *Outbox, name, reason string) float64 {
	t.Helper()
	reg := prom.NewPedanticRegistry()
	m := o.metrics
	reg.MustRegister(m.queued, m.sent, m.dropped, m.rejected, m.sendFailures)
	if reason != "" {
		return promtest.Value(t, reg, name, "reason", reason)
	}
	return promtest.Value(t, reg, name)
}

func TestPriorityText(t *testing.T) {
	for _, p := range []Priority{Low, High} {
		b, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var q Priority
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("round trip of %v = %v, %v", p, q, err)
		}
	}
	if _, err := Priority(5).MarshalText(); err == nil {
		t.Error("MarshalText(5) succeeded")
	}
	_ = fmt.Sprint(Priority(5))
}

// checkQueued checks that the store, Len and the queued gauge all hold the
// keys want, in order.
func checkQueued(t *testing.T, o *Outbox, db *store.DB, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, queuedKeys(t, db)); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
	if got := o.Len(); got != len(want) {
		t.Errorf("Len = %d; want %d", got, len(want))
	}
	if got := metricValue(t, o, "edgefort_cloud_outbox_queued", ""); got != float64(len(want)) {
		t.Errorf("queued gauge = %v; want %d", got, len(want))
	}
}
