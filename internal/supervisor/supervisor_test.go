package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/prom/promtest"
	"github.com/edgefort/edgefort/internal/testkit"
)

// patience bounds every wait for a condition; tests never assert durations.
const patience = 10 * time.Second

// harness runs a Supervisor for one test.
type harness struct {
	s       *Supervisor
	logs    *testkit.SyncBuffer
	release chan struct{} // with gateBackoff, each send ends one backoff wait
	cancel  context.CancelFunc
	ended   chan struct{} // closed when Run has returned
	runErr  error         // what Run returned; read after ended is closed
}

// newHarness creates a Supervisor logging to a buffer; the test's log shows
// it if the test fails. Start it with start.
func newHarness(t *testing.T, opts Options, specs ...Spec) *harness {
	t.Helper()
	h := &harness{logs: &testkit.SyncBuffer{}, release: make(chan struct{}), ended: make(chan struct{})}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(opts, specs...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.s = s
	return h
}

// gateBackoff makes every backoff wait until the test sends on h.release
// (or the component is stopped), so backing-off can be observed.
func (h *harness) gateBackoff() *harness {
	h.s.wait = func(ctx context.Context, _ time.Duration) bool {
		select {
		case <-h.release:
			return true
		case <-ctx.Done():
			return false
		}
	}
	return h
}

// start runs the Supervisor in the background; cleanup stops it and checks
// that Run returned.
func (h *harness) start(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.ended)
		h.runErr = h.s.Run(ctx)
	}()
	t.Cleanup(func() {
		if err := h.stop(t); err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("supervisor log:\n%s", h.logs)
		}
	})
	return h
}

// stop cancels Run's ctx and returns what Run returned.
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	select {
	case <-h.ended:
		return h.runErr
	case <-time.After(patience):
		t.Fatalf("Run did not return within %v; stuck: %v", patience, h.s.Stuck())
		return nil
	}
}

// releaseBackoff ends one gated backoff wait.
func (h *harness) releaseBackoff(t *testing.T) {
	t.Helper()
	select {
	case h.release <- struct{}{}:
	case <-time.After(patience):
		t.Fatalf("no component was backing off within %v", patience)
	}
}

func (h *harness) status(t *testing.T, name string) Status {
	t.Helper()
	for _, st := range h.s.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for %q", name)
	return Status{}
}

type runFunc func(ctx context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }

// steady runs until its ctx ends, counting its calls.
type steady struct{ calls atomic.Int32 }

func (r *steady) Run(ctx context.Context) error {
	r.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// flaky fails its first fails calls by calling fail, then runs like steady.
type flaky struct {
	fails int32
	fail  func() error
	calls atomic.Int32
}

func (r *flaky) Run(ctx context.Context) error {
	if r.calls.Add(1) <= r.fails {
		return r.fail()
	}
	<-ctx.Done()
	return nil
}

func TestRestartsFailedComponent(t *testing.T) {
	tests := []struct {
		name    string
		fail    func() error
		wantErr string
		wantLog []string
	}{
		{
			name:    "error",
			fail:    func() error { return errors.New("boom") },
			wantErr: "boom",
			wantLog: []string{`msg="component failed" component=bad error=boom restarts=0`},
		},
		{
			name:    "panic",
			fail:    func() error { panic("boom") },
			wantErr: "panic: boom",
			wantLog: []string{`level=ERROR msg="component panicked" component=bad panic=boom stack="goroutine `},
		},
		{
			name:    "nil before stop",
			fail:    func() error { return nil },
			wantErr: "exited unexpectedly",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good, bad := &steady{}, &flaky{fails: 2, fail: tt.fail}
			h := newHarness(t, Options{},
				Spec{Name: "good", Runner: good},
				Spec{Name: "bad", Runner: bad},
			).gateBackoff().start(t)

			testkit.WaitFor(t, "good running", func() bool {
				return h.status(t, "good").State == StateRunning && good.calls.Load() == 1
			})
			wantGood := Status{Name: "good", State: StateRunning, Since: h.status(t, "good").Since}
			checkGood := func() {
				t.Helper()
				if diff := cmp.Diff(wantGood, h.status(t, "good")); diff != "" {
					t.Errorf("good status changed (-want +got):\n%s", diff)
				}
				if n := good.calls.Load(); n != 1 {
					t.Errorf("good started %d times, want 1", n)
				}
			}

			for restarts := range 2 {
				testkit.WaitFor(t, fmt.Sprintf("bad backing off after %d restarts", restarts), func() bool {
					st := h.status(t, "bad")
					return st.State == StateBackingOff && st.Restarts == restarts
				})
				st := h.status(t, "bad")
				if st.LastError != tt.wantErr {
					t.Errorf("LastError = %q, want %q", st.LastError, tt.wantErr)
				}
				if st.LastErrorAt.IsZero() || st.NextStart.IsZero() {
					t.Errorf("LastErrorAt = %v, NextStart = %v; want both set", st.LastErrorAt, st.NextStart)
				}
				checkGood()
				h.releaseBackoff(t)
			}

			testkit.WaitFor(t, "bad running after 2 restarts", func() bool {
				st := h.status(t, "bad")
				return st.State == StateRunning && st.Restarts == 2 && bad.calls.Load() == 3
			})
			want := Status{Name: "bad", State: StateRunning, Restarts: 2, LastError: tt.wantErr}
			if diff := cmp.Diff(want, h.status(t, "bad"), cmpopts.IgnoreFields(Status{}, "Since", "LastErrorAt")); diff != "" {
				t.Errorf("bad status (-want +got):\n%s", diff)
			}
			checkGood()
			logs := h.logs.String()
			for _, want := range tt.wantLog {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q", want)
				}
			}
		})
	}
}

func TestRestartsWithRealBackoff(t *testing.T) {
	bad := &flaky{fails: 5, fail: func() error { return errors.New("boom") }}
	h := newHarness(t, Options{Backoff: Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}},
		Spec{Name: "bad", Runner: bad},
	).start(t)
	testkit.WaitFor(t, "bad running after 5 restarts", func() bool {
		st := h.status(t, "bad")
		return st.State == StateRunning && st.Restarts == 5
	})
}

func TestStopDuringBackoff(t *testing.T) {
	bad := &flaky{fails: 1, fail: func() error { return errors.New("boom") }}
	h := newHarness(t, Options{Backoff: Backoff{Initial: time.Hour, Max: time.Hour}},
		Spec{Name: "bad", Runner: bad},
	).start(t)
	testkit.WaitFor(t, "bad backing off", func() bool { return h.status(t, "bad").State == StateBackingOff })
	if err := h.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	st := h.status(t, "bad")
	if st.State != StateStopped || !st.NextStart.IsZero() {
		t.Errorf("after stop: state %q, NextStart %v; want %q and zero", st.State, st.NextStart, StateStopped)
	}
}

func TestShutdownInReverseOrder(t *testing.T) {
	var mu sync.Mutex // guards order
	var order []string
	recorder := func(name string) Runner {
		return runFunc(func(ctx context.Context) error {
			<-ctx.Done()
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		})
	}
	h := newHarness(t, Options{},
		Spec{Name: "a", Runner: recorder("a")},
		Spec{Name: "b", Runner: recorder("b")},
		Spec{Name: "c", Runner: recorder("c")},
	).start(t)
	testkit.WaitFor(t, "all running", h.s.Ready)

	if err := h.stop(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"c", "b", "a"}, order); diff != "" {
		t.Errorf("stop order (-want +got):\n%s", diff)
	}
	var states []State
	for _, st := range h.s.Status() {
		states = append(states, st.State)
	}
	if diff := cmp.Diff([]State{StateStopped, StateStopped, StateStopped}, states); diff != "" {
		t.Errorf("states after Run (-want +got):\n%s", diff)
	}
}

func TestStuckNamesComponentIgnoringCancel(t *testing.T) {
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	stubborn := runFunc(func(ctx context.Context) error {
		<-unblock
		return nil
	})
	h := newHarness(t, Options{},
		Spec{Name: "a", Runner: &steady{}},
		Spec{Name: "b", Runner: stubborn},
		Spec{Name: "c", Runner: &steady{}},
	).start(t)
	t.Cleanup(release) // runs before the harness's cleanup, so that never hangs
	testkit.WaitFor(t, "all running", h.s.Ready)

	h.cancel()
	testkit.WaitFor(t, "b stuck", func() bool { return cmp.Equal(h.s.Stuck(), []string{"b"}) })
	select {
	case <-h.ended:
		t.Fatal("Run returned while b was still running")
	default:
	}
	var states []State
	for _, st := range h.s.Status() {
		states = append(states, st.State)
	}
	if diff := cmp.Diff([]State{StateRunning, StateStopping, StateStopped}, states); diff != "" {
		t.Errorf("states while b is stuck (-want +got):\n%s", diff)
	}

	release()
	if err := h.stop(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if got := h.s.Stuck(); len(got) != 0 {
		t.Errorf("Stuck() after Run = %q, want none", got)
	}
}

func TestSignalsReady(t *testing.T) {
	proceed := make(chan struct{})
	var h *harness
	slow := runFunc(func(ctx context.Context) error {
		select {
		case <-proceed:
		case <-ctx.Done():
			return nil
		}
		h.s.MarkReady("slow")
		<-ctx.Done()
		return nil
	})
	h = newHarness(t, Options{},
		Spec{Name: "plain", Runner: &steady{}},
		Spec{Name: "slow", Runner: slow, SignalsReady: true},
	).start(t)

	testkit.WaitFor(t, "plain running", func() bool { return h.status(t, "plain").State == StateRunning })
	testkit.WaitFor(t, "slow starting", func() bool { return h.status(t, "slow").State == StateStarting })
	h.s.MarkReady("unknown") // no such component: no effect, no panic
	if h.s.Ready() {
		t.Errorf("Ready() = true before slow called Ready")
	}
	if st := h.status(t, "slow"); st.State != StateStarting {
		t.Errorf("slow state = %q before it called Ready, want %q", st.State, StateStarting)
	}

	close(proceed)
	testkit.WaitFor(t, "supervisor ready", h.s.Ready)
	if st := h.status(t, "slow"); st.State != StateRunning {
		t.Errorf("slow state = %q after Ready, want %q", st.State, StateRunning)
	}
}

func TestMetrics(t *testing.T) {
	reg := prom.NewRegistry()
	bad := &flaky{fails: 3, fail: func() error { return errors.New("boom") }}
	h := newHarness(t, Options{Registerer: reg},
		Spec{Name: "good", Runner: &steady{}},
		Spec{Name: "bad", Runner: bad},
	).gateBackoff().start(t)
	for range 3 {
		h.releaseBackoff(t)
	}
	testkit.WaitFor(t, "all running", h.s.Ready)

	want := map[string]float64{
		`edgefort_supervisor_component_failures_total{component="bad"}`:  3,
		`edgefort_supervisor_component_failures_total{component="good"}`: 0,
		`edgefort_supervisor_component_restarts_total{component="bad"}`:  3,
		`edgefort_supervisor_component_restarts_total{component="good"}`: 0,
		`edgefort_supervisor_component_up{component="bad"}`:              1,
		`edgefort_supervisor_component_up{component="good"}`:             1,
	}
	if diff := cmp.Diff(want, gather(t, reg)); diff != "" {
		t.Errorf("metrics while running (-want +got):\n%s", diff)
	}

	if err := h.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	want[`edgefort_supervisor_component_up{component="bad"}`] = 0
	want[`edgefort_supervisor_component_up{component="good"}`] = 0
	if diff := cmp.Diff(want, gather(t, reg)); diff != "" {
		t.Errorf("metrics after stop (-want +got):\n%s", diff)
	}
}

// gather returns every sample in reg, keyed name{label="value",...}.
func gather(t *testing.T, reg *prom.Registry) map[string]float64 {
	t.Helper()
	return promtest.Series(t, reg)
}

func TestNewRejects(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	r := &steady{}
	taken := prom.NewRegistry()
	if _, err := New(Options{Logger: logger, Registerer: taken}); err != nil {
		t.Fatalf("first New: %v", err)
	}
	tests := []struct {
		name  string
		opts  Options
		specs []Spec
		want  []string // each must appear in the error
	}{
		{
			name:  "duplicate name",
			opts:  Options{Logger: logger},
			specs: []Spec{{Name: "admin", Runner: r}, {Name: "metrics", Runner: r}, {Name: "admin", Runner: r}},
			want:  []string{`specs[2].name: duplicate "admin"`},
		},
		{
			name:  "empty name",
			opts:  Options{Logger: logger},
			specs: []Spec{{Runner: r}},
			want:  []string{"specs[0].name: empty"},
		},
		{
			name:  "nil runner",
			opts:  Options{Logger: logger},
			specs: []Spec{{Name: "admin", Runner: r}, {Name: "metrics"}},
			want:  []string{`specs[1].runner: nil for "metrics"`},
		},
		{
			name:  "every problem at once",
			opts:  Options{Backoff: Backoff{Initial: time.Minute, Max: time.Second}},
			specs: []Spec{{Name: "a"}, {Name: "a", Runner: r}},
			want: []string{
				"logger: required",
				"backoff.max: 1s is less than backoff.initial 1m0s",
				`specs[0].runner: nil for "a"`,
				`specs[1].name: duplicate "a"`,
			},
		},
		{
			name: "negative backoff",
			opts: Options{Logger: logger, Backoff: Backoff{ResetAfter: -time.Second}},
			want: []string{"backoff.reset_after: negative (-1s)"},
		},
		{
			name: "metrics already registered",
			opts: Options{Logger: logger, Registerer: taken},
			want: []string{"supervisor: register metrics: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts, tt.specs...)
			if err == nil {
				t.Fatalf("New = %v, nil; want an error", s)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	h := newHarness(t, Options{}, Spec{Name: "a", Runner: &steady{}}).start(t)
	testkit.WaitFor(t, "first Run started", h.s.Ready)
	if err := h.s.Run(context.Background()); err == nil {
		t.Errorf("second Run = nil, want an error")
	}
}

func TestRunWithCancelledContextStartsNothing(t *testing.T) {
	r := &steady{}
	h := newHarness(t, Options{}, Spec{Name: "a", Runner: r})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.s.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if n := r.calls.Load(); n != 0 {
		t.Errorf("component started %d times, want 0", n)
	}
}
