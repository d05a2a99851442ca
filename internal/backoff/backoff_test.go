package backoff

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	ms = time.Millisecond
	s  = time.Second
)

func TestPolicyDelay(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		rand   float64
		want   []time.Duration // delays after 0, 1, 2, ... failures
	}{
		{"full jitter doubles to the max", Policy{Initial: s, Max: 10 * s}, 0.5,
			[]time.Duration{500 * ms, s, 2 * s, 4 * s, 5 * s, 5 * s}},
		{"full jitter reaches zero", Policy{Initial: s, Max: 10 * s}, 0,
			[]time.Duration{0, 0, 0}},
		{"full jitter near the top", Policy{Initial: s, Max: 10 * s}, 0.999999,
			[]time.Duration{999999 * time.Microsecond, 1999998 * time.Microsecond, 3999996 * time.Microsecond, 7999992 * time.Microsecond, 9999990 * time.Microsecond}},
		{"floor keeps half the cap", Policy{Initial: 100 * ms, Max: s, Floor: 0.5}, 0,
			[]time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 500 * ms, 500 * ms}},
		{"floor near the top", Policy{Initial: 100 * ms, Max: s, Floor: 0.5}, 0.999,
			[]time.Duration{99950 * time.Microsecond, 199900 * time.Microsecond, 399800 * time.Microsecond, 799600 * time.Microsecond, 999500 * time.Microsecond}},
		{"floor one is no jitter", Policy{Initial: s, Max: 5 * s, Floor: 1}, 0.7,
			[]time.Duration{s, 2 * s, 4 * s, 5 * s}},
		{"quick retries then the spread", Policy{Initial: s, Max: 10 * s, Quick: 2, Spread: 4 * s}, 0.5,
			[]time.Duration{500 * ms, s, 2 * s, 4 * s, 5 * s, 5 * s}},
		{"spread jumps past doubling", Policy{Initial: s, Max: 10 * s, Quick: 2, Spread: 8 * s}, 0.5,
			[]time.Duration{500 * ms, s, 4 * s, 5 * s}},
		{"spread is the max", Policy{Initial: s, Max: 10 * s, Quick: 2, Spread: 10 * s}, 0.5,
			[]time.Duration{500 * ms, s, 5 * s, 5 * s}},
		{"spread above the max is capped", Policy{Initial: s, Max: 10 * s, Quick: 1, Spread: time.Minute}, 1,
			[]time.Duration{s, 10 * s, 10 * s}},
		{"zero policy waits not at all", Policy{}, 0.5,
			[]time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []time.Duration
			for n := range tt.want {
				got = append(got, tt.policy.Delay(n, tt.rand))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyHugeMaxDoesNotOverflow(t *testing.T) {
	for _, p := range []Policy{
		{Initial: s, Max: time.Duration(1<<63 - 1), Floor: 0.5},
		{Initial: s, Max: time.Duration(1 << 62), Quick: 2, Spread: time.Minute},
	} {
		prev := time.Duration(0)
		for n := range 200 {
			c := p.Cap(n)
			if c < prev || c <= 0 || c > p.Max {
				t.Fatalf("%+v: cap %d = %v after %v", p, n, c, prev)
			}
			if d := p.Delay(n, 0.999); d < 0 {
				t.Fatalf("%+v: delay %d = %v, negative", p, n, d)
			}
			prev = c
		}
	}
}

// TestBackoffGrace walks a Backoff through connections that stay up for
// the given times on an injected clock: only one that lasts the grace
// period starts the delays over.
func TestBackoffGrace(t *testing.T) {
	p := Policy{Initial: 100 * ms, Max: s, Floor: 1, Grace: time.Minute}
	tests := []struct {
		name  string
		steps []string // "up 1m" (up, then the clock moves on), "fail", "reset"
		want  []time.Duration
	}{
		{"failures without a connection double",
			[]string{"fail", "fail", "fail"},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms}},
		{"a connection that lasts the grace period starts over",
			[]string{"fail", "fail", "up 1m", "fail", "fail"},
			[]time.Duration{100 * ms, 200 * ms, 100 * ms, 200 * ms}},
		{"a flapping connection keeps slowing down",
			[]string{"fail", "up 59s", "fail", "up 59s", "fail", "up 59s", "fail"},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms}},
		{"uptime does not add up across connections",
			[]string{"fail", "up 40s", "fail", "up 40s", "fail"},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms}},
		{"reset needs no grace",
			[]string{"fail", "fail", "reset", "fail"},
			[]time.Duration{100 * ms, 200 * ms, 100 * ms}},
		{"reset forgets an open connection",
			[]string{"fail", "up 59s", "reset", "fail", "fail"},
			[]time.Duration{100 * ms, 100 * ms, 200 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			b := Backoff{Policy: p, Now: func() time.Time { return clock }}
			var got []time.Duration
			for _, step := range tt.steps {
				switch {
				case step == "fail":
					d := b.Next()
					got = append(got, d)
					clock = clock.Add(d)
				case step == "reset":
					b.Reset()
				default:
					up, err := time.ParseDuration(step[len("up "):])
					if err != nil {
						t.Fatal(err)
					}
					b.Up()
					clock = clock.Add(up)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
			if n := len(got); b.Failures() == 0 && n > 0 {
				t.Errorf("Failures() = 0 after %d failures", n)
			}
		})
	}
}

func TestBackoffZeroGraceNeverResets(t *testing.T) {
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Backoff{Policy: Policy{Initial: s, Max: time.Hour, Floor: 1}, Now: func() time.Time { return clock }}
	b.Next()
	b.Up()
	clock = clock.Add(24 * time.Hour)
	if got := b.Next(); got != 2*s {
		t.Errorf("delay after a day up with no grace = %v, want 2s", got)
	}
}

func TestBackoffRand(t *testing.T) {
	draws := []float64{0.25, 0.75}
	b := Backoff{Policy: Policy{Initial: 4 * s, Max: time.Minute}, Rand: func() float64 {
		r := draws[0]
		draws = draws[1:]
		return r
	}}
	if got := []time.Duration{b.Next(), b.Next()}; !cmp.Equal(got, []time.Duration{s, 6 * s}) {
		t.Errorf("delays = %v, want [1s 6s]", got)
	}
}

func TestSleep(t *testing.T) {
	cause := errors.New("shutting down")
	done, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"ended context cuts a long wait", done, time.Hour, cause},
		{"ended context with no wait", done, 0, cause},
		{"live context with no wait", context.Background(), -s, nil},
		{"live context waits", context.Background(), ms, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Sleep(tt.ctx, tt.d); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("Sleep = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBackoffWaitHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Policy: Policy{Initial: time.Hour, Max: time.Hour, Floor: 1}}
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
	if b.Failures() != 1 {
		t.Errorf("Failures() = %d after one Wait, want 1", b.Failures())
	}
}

// TestBackoffThrottled walks a Backoff through plain and throttled
// failures (full cap, no jitter): a throttled one skips the quick retries
// and doubles past Max up to ThrottledMax; a plain failure after it is
// capped at Max again.
func TestBackoffThrottled(t *testing.T) {
	p := Policy{Initial: s, Max: 8 * s, Quick: 2, Spread: 4 * s, ThrottledMax: 64 * s, Floor: 1}
	tests := []struct {
		name   string
		policy Policy
		steps  string // f: plain failure, t: throttled, u: up past the grace period
		want   []time.Duration
	}{
		{"plain failures", p, "fffff", []time.Duration{s, 2 * s, 4 * s, 8 * s, 8 * s}},
		{"throttled from the start skips the quick retries", p, "ttttttt",
			[]time.Duration{4 * s, 8 * s, 16 * s, 32 * s, 64 * s, 64 * s, 64 * s}},
		{"throttled after one quick retry", p, "ftt", []time.Duration{s, 4 * s, 8 * s}},
		{"throttled after the quick retries", p, "ffftt", []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s}},
		{"a plain failure after throttling is capped at Max", p, "tttf", []time.Duration{4 * s, 8 * s, 16 * s, 8 * s}},
		// After the connection, the throttled failure skipped the quick
		// retries again, so the plain one that follows is past them too.
		{"a connection that lasts starts over", p, "tttutf", []time.Duration{4 * s, 8 * s, 16 * s, 4 * s, 8 * s}},
		{"zero ThrottledMax is Max", Policy{Initial: s, Max: 8 * s, Quick: 2, Spread: 4 * s, Floor: 1}, "ttt",
			[]time.Duration{4 * s, 8 * s, 8 * s}},
		{"ThrottledMax below Max is Max", Policy{Initial: s, Max: 8 * s, ThrottledMax: 2 * s, Floor: 1}, "tttt",
			[]time.Duration{s, 2 * s, 4 * s, 8 * s}},
		{"no spread doubles from Initial", Policy{Initial: s, Max: 2 * s, ThrottledMax: 16 * s, Floor: 1}, "ttttt",
			[]time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			tt.policy.Grace = time.Minute
			b := Backoff{Policy: tt.policy, Now: func() time.Time { return clock }}
			var got []time.Duration
			for _, step := range tt.steps {
				switch step {
				case 'f':
					got = append(got, b.Next())
				case 't':
					got = append(got, b.Throttled())
				case 'u':
					b.Up()
					clock = clock.Add(time.Hour)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyThrottledCapDoesNotOverflow(t *testing.T) {
	p := Policy{Initial: s, Max: time.Minute, Quick: 2, Spread: 40 * s, ThrottledMax: time.Duration(1<<63 - 1)}
	prev := time.Duration(0)
	for n := range 200 {
		c := p.ThrottledCap(n)
		if c < prev || c <= 0 {
			t.Fatalf("throttled cap %d = %v after %v", n, c, prev)
		}
		if d := p.ThrottledDelay(n, 0.999); d < 0 {
			t.Fatalf("throttled delay %d = %v, negative", n, d)
		}
		prev = c
	}
}
