package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/internal/testkit"
)

var errCloudDown = errors.New("cloud down")

// scriptSender answers each call with answer, given the call's number
// (from 0) and reports, and records every call.
type scriptSender struct {
	answer func(call int, reports []api.Report) (api.ReportsResponse, error)

	mu    sync.Mutex
	calls [][]api.Report
	sent  chan struct{} // a token per call, if not nil
}

func (s *scriptSender) SendReports(ctx context.Context, reports []api.Report) (api.ReportsResponse, error) {
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, slices.Clone(reports))
	s.mu.Unlock()
	if s.sent != nil {
		s.sent <- struct{}{}
	}
	return s.answer(n, reports)
}

func (s *scriptSender) callKeys() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]string
	for _, c := range s.calls {
		out = append(out, reportKeys(c))
	}
	return out
}

func reportKeys(rs []api.Report) []string {
	keys := make([]string, len(rs))
	for i, r := range rs {
		keys[i] = r.IdempotencyKey
	}
	return keys
}

func ackAll(rs []api.Report) api.ReportsResponse {
	return api.ReportsResponse{Acknowledged: reportKeys(rs)}
}

// startRun runs o until the test ends, then checks that Run returned nil.
func startRun(t *testing.T, o *Outbox) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func enqueueN(t *testing.T, o *Outbox, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := o.Enqueue(t.Context(), Item{Stream: k[:1], Type: "t", Key: k}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunOrderAcrossBatches delivers interleaved streams in batches smaller
// than the queue: batches are the queue's head, in enqueue order.
func TestRunOrderAcrossBatches(t *testing.T) {
	s := &scriptSender{answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) { return ackAll(rs), nil }}
	o := newTestOutbox(t, Options{Sender: s, Batch: 3})
	var keys []string
	for i := range 10 {
		for _, stream := range []string{"a", "b", "c"} {
			keys = append(keys, fmt.Sprintf("%s%02d", stream, i))
		}
	}
	keys = append(keys, "a10") // 31 items: the last batch is short
	enqueueN(t, o, keys...)
	startRun(t, o)
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })

	var want [][]string
	for i := 0; i < len(keys); i += 3 {
		want = append(want, keys[i:min(i+3, len(keys))])
	}
	if diff := cmp.Diff(want, s.callKeys()); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if got := metricValue(t, o, "edgefort_cloud_outbox_sent_total", ""); got != float64(len(keys)) {
		t.Errorf("sent_total = %v; want %d", got, len(keys))
	}
}

// TestRunAnswers scripts the control plane's answer to a first batch of
// five items and checks what is resent, what is dropped and what is logged.
func TestRunAnswers(t *testing.T) {
	keys := []string{"a1", "a2", "b1", "a3", "b2"}
	tests := []struct {
		name         string
		first        api.ReportsResponse
		firstErr     error
		wantSecond   []string // keys of the second call
		wantRejected []string // keys logged as rejected
		wantSent     float64  // sent_total once the second call is acked
		wantFailures float64
	}{
		{
			name:       "all acknowledged",
			first:      api.ReportsResponse{Acknowledged: keys},
			wantSecond: nil,
			wantSent:   5,
		},
		{
			name: "some rejected",
			first: api.ReportsResponse{
				Acknowledged: []string{"a1", "b1", "b2"},
				Rejected:     []api.Rejection{{IdempotencyKey: "a2", Reason: "schema: body.state missing"}},
			},
			wantSecond:   []string{"a3"},
			wantRejected: []string{"a2"},
			wantSent:     4,
		},
		{
			name:       "neither: resent with the same keys, in order",
			first:      api.ReportsResponse{Acknowledged: []string{"a1", "a3", "unknown-key"}},
			wantSecond: []string{"a2", "b1", "b2"},
			wantSent:   5,
		},
		{
			name:         "nothing settled: backoff, same batch",
			first:        api.ReportsResponse{},
			wantSecond:   keys,
			wantSent:     5,
			wantFailures: 1,
		},
		{
			name:         "send error: backoff, same batch",
			firstErr:     errCloudDown,
			wantSecond:   keys,
			wantSent:     5,
			wantFailures: 1,
		},
		{
			name: "all rejected",
			first: api.ReportsResponse{Rejected: []api.Rejection{
				{IdempotencyKey: "a1", Reason: "r"}, {IdempotencyKey: "a2", Reason: "r"}, {IdempotencyKey: "b1", Reason: "r"},
				{IdempotencyKey: "a3", Reason: "r"}, {IdempotencyKey: "b2", Reason: "r"},
			}},
			wantRejected: keys,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			s := &scriptSender{answer: func(call int, rs []api.Report) (api.ReportsResponse, error) {
				if call == 0 {
					return tt.first, tt.firstErr
				}
				return ackAll(rs), nil
			}}
			o := newTestOutbox(t, Options{Sender: s, Logger: logs.logger(),
				Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
			enqueueN(t, o, keys...)
			startRun(t, o)
			testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })

			calls := s.callKeys()
			if diff := cmp.Diff(keys, calls[0]); diff != "" {
				t.Errorf("first call (-want +got):\n%s", diff)
			}
			var second []string
			if len(calls) > 1 {
				second = calls[1]
			}
			if diff := cmp.Diff(tt.wantSecond, second); diff != "" {
				t.Errorf("second call (-want +got):\n%s", diff)
			}
			if len(calls) > 2 {
				t.Errorf("%d calls; want at most 2: %v", len(calls), calls)
			}
			var rejected []string
			for _, r := range logs.records(t, slog.LevelWarn, "rejected") {
				rejected = append(rejected, r[logKeyKey].(string))
				if r[logKeyReason] == "" || r[logKeyStream] == nil {
					t.Errorf("rejection log %v lacks reason or stream", r)
				}
			}
			if diff := cmp.Diff(tt.wantRejected, rejected); diff != "" {
				t.Errorf("rejections logged (-want +got):\n%s", diff)
			}
			for name, want := range map[string]float64{
				"edgefort_cloud_outbox_sent_total":          tt.wantSent,
				"edgefort_cloud_outbox_rejected_total":      float64(len(tt.wantRejected)),
				"edgefort_cloud_outbox_send_failures_total": tt.wantFailures,
				"edgefort_cloud_outbox_queued":              0,
			} {
				if got := metricValue(t, o, name, ""); got != want {
					t.Errorf("%s = %v; want %v", name, got, want)
				}
			}
		})
	}
}

// TestRunBackoff fails sends while the cloud is down, then delivers: the
// same batch goes each time, and the waits grow but stay under Max.
func TestRunBackoff(t *testing.T) {
	const failures = 6
	var (
		mu    sync.Mutex
		times []time.Time
	)
	s := &scriptSender{answer: func(call int, rs []api.Report) (api.ReportsResponse, error) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if call < failures {
			return api.ReportsResponse{}, errCloudDown
		}
		return ackAll(rs), nil
	}}
	var logs logBuffer
	o := newTestOutbox(t, Options{Sender: s, Logger: logs.logger(),
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}})
	o.rand = func() float64 { return 0.999 } // the nominal delay, to measure it
	enqueueN(t, o, "a1", "a2")
	start := time.Now()
	startRun(t, o)
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })
	elapsed := time.Since(start)

	calls := s.callKeys()
	if len(calls) != failures+1 {
		t.Fatalf("%d calls; want %d", len(calls), failures+1)
	}
	for i, c := range calls {
		if diff := cmp.Diff([]string{"a1", "a2"}, c); diff != "" {
			t.Errorf("call %d (-want +got):\n%s", i, diff)
		}
	}
	// Nominal waits 10, 20, 40, 80, 80, 80 ms: 310ms in all.
	if elapsed < 300*time.Millisecond {
		t.Errorf("delivered after %v; the backoff should have taken about 310ms", elapsed)
	}
	mu.Lock()
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 9*time.Millisecond {
			t.Errorf("gap before call %d = %v; want at least the backoff", i, gap)
		}
	}
	mu.Unlock()
	if got := metricValue(t, o, "edgefort_cloud_outbox_send_failures_total", ""); got != failures {
		t.Errorf("send_failures_total = %v; want %d", got, failures)
	}
	if n := len(logs.records(t, slog.LevelWarn, "send failed")); n != 1 {
		t.Errorf("%d warnings for %d failures in a row; want 1 (the first)", n, failures)
	}
	// Run logs the recovery just after the removal that Len shows.
	testkit.WaitFor(t, "the recovery log", func() bool { return len(logs.records(t, slog.LevelInfo, "delivering again")) == 1 })
}

func TestBackoffPolicy(t *testing.T) {
	cfg := Backoff{Initial: time.Second, Max: 10 * time.Second}
	tests := []struct {
		name  string
		rand  float64
		steps []string // "fail" or "reset"
		want  []time.Duration
	}{
		{
			name:  "doubles to the cap",
			rand:  0.5,
			steps: []string{"fail", "fail", "fail", "fail", "fail", "fail"},
			want:  []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second},
		},
		{
			name:  "full jitter reaches zero",
			rand:  0,
			steps: []string{"fail", "fail"},
			want:  []time.Duration{0, 0},
		},
		{
			name:  "reset after success",
			rand:  0.5,
			steps: []string{"fail", "fail", "reset", "fail"},
			want:  []time.Duration{500 * time.Millisecond, time.Second, 500 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := backoff.Backoff{Policy: cfg.policy(), Rand: func() float64 { return tt.rand }}
			var got []time.Duration
			for _, s := range tt.steps {
				if s == "reset" {
					p.Reset()
					continue
				}
				got = append(got, p.Next())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunEnqueueInFlight enqueues while a send is in flight: Run wakes for
// the new item without waiting for a backoff, and sends it after the older
// item of its stream.
func TestRunEnqueueInFlight(t *testing.T) {
	release := make(chan struct{})
	s := &scriptSender{
		sent: make(chan struct{}, 10),
		answer: func(call int, rs []api.Report) (api.ReportsResponse, error) {
			if call == 0 {
				<-release
				return api.ReportsResponse{Acknowledged: []string{"b1"}}, nil // a1: neither
			}
			return ackAll(rs), nil
		},
	}
	// A backoff this long would stall the test if Run waited for it.
	o := newTestOutbox(t, Options{Sender: s, Backoff: Backoff{Initial: time.Hour, Max: time.Hour}})
	enqueueN(t, o, "a1", "b1")
	startRun(t, o)
	<-s.sent
	enqueueN(t, o, "a2", "b2")
	close(release)
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })

	want := [][]string{{"a1", "b1"}, {"a1", "a2", "b2"}}
	if diff := cmp.Diff(want, s.callKeys()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestRunWakesOnEnqueue checks that an idle Run sends at once.
func TestRunWakesOnEnqueue(t *testing.T) {
	s := &scriptSender{sent: make(chan struct{}, 10),
		answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) { return ackAll(rs), nil }}
	o := newTestOutbox(t, Options{Sender: s, Backoff: Backoff{Initial: time.Hour, Max: time.Hour}})
	startRun(t, o)
	for i := range 3 {
		time.Sleep(5 * time.Millisecond) // let Run go idle
		enqueueN(t, o, fmt.Sprintf("a%d", i))
		select {
		case <-s.sent:
		case <-time.After(5 * time.Second):
			t.Fatalf("item %d not sent within 5s of Enqueue", i)
		}
	}
}

// TestRunLingerBatchesABurst: items that arrive within the linger after
// the queue was empty go out in one call (and one removal commit); with no
// linger, the first item goes alone, at once.
func TestRunLingerBatchesABurst(t *testing.T) {
	tests := []struct {
		name    string
		linger  time.Duration
		oneCall bool
	}{
		{"linger", 2 * time.Second, true},
		{"none", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scriptSender{sent: make(chan struct{}, 10),
				answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) { return ackAll(rs), nil }}
			o := newTestOutbox(t, Options{Sender: s, Linger: tt.linger})
			startRun(t, o)
			time.Sleep(5 * time.Millisecond) // let Run go idle
			enqueueN(t, o, "a0")
			if tt.linger < 0 {
				<-s.sent // the first item is on its way before the rest exist
			}
			enqueueN(t, o, "a1", "a2", "a3", "a4")
			testkit.WaitFor(t, "every item delivered", func() bool { return o.Len() == 0 })
			if got := s.callKeys(); (len(got) == 1) != tt.oneCall {
				t.Errorf("calls = %v, want them in one call: %v", got, tt.oneCall)
			}
		})
	}
}

func TestRunMisuse(t *testing.T) {
	o := newTestOutbox(t, Options{})
	if err := o.Run(t.Context()); !errors.Is(err, errNoSender) {
		t.Errorf("Run without a sender = %v; want %v", err, errNoSender)
	}
	s := &scriptSender{answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) { return ackAll(rs), nil }}
	o = newTestOutbox(t, Options{Sender: s})
	startRun(t, o)
	testkit.WaitFor(t, "Run to start", o.running.Load)
	if err := o.Run(t.Context()); !errors.Is(err, errRunning) {
		t.Errorf("second Run = %v; want %v", err, errRunning)
	}
}

// TestRunUndecodable drops an item that no longer decodes, with a metric,
// and delivers the rest.
func TestRunUndecodable(t *testing.T) {
	s := &scriptSender{answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) { return ackAll(rs), nil }}
	o := newTestOutbox(t, Options{Sender: s})
	enqueueN(t, o, "a1", "a2")
	if err := o.db.Bucket(bucketName).Put(seqKey(0), "not a record"); err != nil {
		t.Fatal(err)
	}
	startRun(t, o)
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })
	if diff := cmp.Diff([][]string{{"a2"}}, s.callKeys()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if got := metricValue(t, o, "edgefort_cloud_outbox_dropped_total", dropUndecodable); got != 1 {
		t.Errorf("dropped_total{reason=undecodable} = %v; want 1", got)
	}
}

// TestConcurrentEnqueue enqueues from 8 goroutines, a stream each, while Run
// delivers to a flaky control plane: every key arrives and each stream's
// first deliveries are in order.
func TestConcurrentEnqueue(t *testing.T) {
	const (
		writers   = 8
		perWriter = 60
	)
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(1, 2))
	s := &scriptSender{answer: func(call int, rs []api.Report) (api.ReportsResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		switch r := rnd.IntN(10); {
		case r == 0:
			return api.ReportsResponse{}, errCloudDown
		case r <= 2: // acknowledge a random half; the rest goes again
			var resp api.ReportsResponse
			for _, k := range reportKeys(rs) {
				if rnd.IntN(2) == 0 {
					resp.Acknowledged = append(resp.Acknowledged, k)
				}
			}
			return resp, nil
		}
		return ackAll(rs), nil
	}}
	o := newTestOutbox(t, Options{Sender: s, Batch: 16,
		Backoff: Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}})
	startRun(t, o)

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				body, _ := json.Marshal(i)
				_, err := o.Enqueue(context.Background(), Item{
					Stream: fmt.Sprintf("w%d", w), Type: "t", Body: body,
					Key: fmt.Sprintf("w%d-%03d", w, i),
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })

	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	next := map[string]int{} // per stream, the next body expected first-time
	dups := 0
	for _, call := range s.calls {
		last := map[string]int{}
		for _, r := range call {
			var n int
			json.Unmarshal(r.Body, &n)
			if prev, ok := last[r.Stream]; ok && n <= prev {
				t.Errorf("stream %s: %d after %d in one batch", r.Stream, n, prev)
			}
			last[r.Stream] = n
			if seen[r.IdempotencyKey] {
				dups++
				continue
			}
			seen[r.IdempotencyKey] = true
			if n != next[r.Stream] {
				t.Errorf("stream %s: first delivery of %d, expected %d", r.Stream, n, next[r.Stream])
			}
			next[r.Stream] = n + 1
		}
	}
	if len(seen) != writers*perWriter {
		t.Errorf("%d distinct keys delivered; want %d", len(seen), writers*perWriter)
	}
	t.Logf("%d calls, %d resends", len(s.calls), dups)
}

var errRefused = errors.New("400 bad request")

// TestRunRefusedItem: a batch the control plane refuses (one bad item in
// it) is halved until the bad item is alone; it is dropped with a metric,
// and every other item is delivered in order.
func TestRunRefusedItem(t *testing.T) {
	s := &scriptSender{answer: func(_ int, rs []api.Report) (api.ReportsResponse, error) {
		for _, r := range rs {
			if r.IdempotencyKey == "a05" {
				return api.ReportsResponse{}, errRefused
			}
		}
		return ackAll(rs), nil
	}}
	o := newTestOutbox(t, Options{Sender: s, Batch: 8, Refused: func(err error) bool { return errors.Is(err, errRefused) }})
	var keys []string
	for i := range 12 {
		keys = append(keys, fmt.Sprintf("a%02d", i))
	}
	enqueueN(t, o, keys...)
	startRun(t, o)
	testkit.WaitFor(t, "delivery", func() bool { return o.Len() == 0 })

	var delivered []string // the calls that went through
	for _, call := range s.callKeys() {
		if !slices.Contains(call, "a05") {
			delivered = append(delivered, call...)
		}
	}
	want := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "a05" })
	if diff := cmp.Diff(want, delivered); diff != "" {
		t.Errorf("delivered (-want +got):\n%s\ncalls: %v", diff, s.callKeys())
	}
	if got := metricValue(t, o, "edgefort_cloud_outbox_dropped_total", "refused"); got != 1 {
		t.Errorf("dropped_total{refused} = %v, want 1", got)
	}
}
