package supervisor

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/backoff"
)

func TestBackoffPolicyNext(t *testing.T) {
	const ms = time.Millisecond
	cfg := Backoff{Initial: 100 * ms, Max: time.Second, ResetAfter: time.Minute}
	tests := []struct {
		name   string
		rand   float64
		uptime []time.Duration // how long each run stayed up before failing
		want   []time.Duration
	}{
		{
			name:   "no jitter doubles and caps at half of max",
			rand:   0,
			uptime: []time.Duration{ms, ms, ms, ms, ms, ms},
			want:   []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 500 * ms, 500 * ms},
		},
		{
			name:   "near-full jitter doubles and caps near max",
			rand:   0.999,
			uptime: []time.Duration{ms, ms, ms, ms, ms, ms},
			want: []time.Duration{
				99950 * time.Microsecond, 199900 * time.Microsecond, 399800 * time.Microsecond,
				799600 * time.Microsecond, 999500 * time.Microsecond, 999500 * time.Microsecond,
			},
		},
		{
			name:   "staying up for ResetAfter starts over",
			rand:   0,
			uptime: []time.Duration{ms, ms, ms, time.Minute, ms, ms},
			want:   []time.Duration{50 * ms, 100 * ms, 200 * ms, 50 * ms, 100 * ms, 200 * ms},
		},
		{
			name:   "flapping just under ResetAfter keeps slowing down",
			rand:   0,
			uptime: []time.Duration{ms, time.Minute - 1, time.Minute - 1, time.Minute - 1},
			want:   []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			b := backoff.Backoff{Policy: cfg.policy(), Rand: func() float64 { return tt.rand }, Now: func() time.Time { return clock }}
			var got []time.Duration
			for _, up := range tt.uptime {
				b.Up() // the component starts
				clock = clock.Add(up)
				d := b.Next()
				got = append(got, d)
				clock = clock.Add(d)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoffDefaults(t *testing.T) {
	got := Backoff{Initial: 5 * time.Second}.withDefaults()
	want := Backoff{Initial: 5 * time.Second, Max: 2 * time.Minute, ResetAfter: time.Minute}
	if got != want {
		t.Errorf("withDefaults() = %+v, want %+v", got, want)
	}
}
