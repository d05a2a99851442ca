package iot

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/backoff"
)

func TestBackoffFullJitter(t *testing.T) {
	tests := []struct {
		name   string
		spread time.Duration
		rand   float64
		want   []time.Duration // successive delays
	}{
		// Caps 1s and 2s (the quick retries), then the 4s spread doubling
		// to the 10s max; the delay is rand × cap.
		{"top of the range", 4 * time.Second, 0.999999, []time.Duration{999999 * time.Microsecond, 1999998 * time.Microsecond, 3999996 * time.Microsecond, 7999992 * time.Microsecond, 9999990 * time.Microsecond, 9999990 * time.Microsecond}},
		{"half", 4 * time.Second, 0.5, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"zero", 4 * time.Second, 0, []time.Duration{0, 0, 0}},
		// The spread jumps past plain doubling: caps 1s, 2s, 8s, 10s.
		{"spread jump", 8 * time.Second, 0.5, []time.Duration{500 * time.Millisecond, time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		// A spread equal to the max: straight to the max after the quick retries.
		{"spread is max", 10 * time.Second, 0.5, []time.Duration{500 * time.Millisecond, time.Second, 5 * time.Second, 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testBackoff(time.Second, tt.spread, 10*time.Second, func() float64 { return tt.rand })
			for i, want := range tt.want {
				if got := b.Next(); got != want {
					t.Errorf("delay %d = %v, want %v", i, got, want)
				}
			}
			b.Reset()
			if got, want := b.Next(), time.Duration(tt.rand*float64(time.Second)); got != want {
				t.Errorf("delay after reset = %v, want %v", got, want)
			}
		})
	}
}

// TestBackoffSpreadsAFleet draws the attempts of a simulated fleet through
// an outage and checks the property the spread window exists for: once
// the broker is back, no second takes more than 5% of the fleet. With
// plain doubling from 1s (spread = 4s here) the same outage puts well over
// that into the first seconds, so the test also shows it would catch the
// spread being lost.
func TestBackoffSpreadsAFleet(t *testing.T) {
	const (
		nodes  = 20000
		outage = 10 * time.Second
	)
	peak := func(spread time.Duration) float64 {
		rng := rand.New(rand.NewPCG(1, 2))
		perSecond := map[int]int{}
		for range nodes {
			b := testBackoff(time.Second, spread, 2*time.Minute, rng.Float64)
			at := b.Next() // the first retry after the connection was lost
			for at < outage {
				at += b.Next()
			}
			perSecond[int((at-outage)/time.Second)]++
		}
		return float64(maxOf(perSecond)) / nodes
	}
	if got := peak(40 * time.Second); got > 0.05 {
		t.Errorf("spread 40s: the busiest second took %.1f%% of the fleet, want at most 5%%", 100*got)
	}
	if got := peak(4 * time.Second); got <= 0.10 {
		t.Errorf("plain doubling: the busiest second took %.1f%%; the simulation no longer shows the stampede", 100*got)
	}
}

func maxOf(m map[int]int) int {
	best := 0
	for _, v := range m {
		best = max(best, v)
	}
	return best
}

// testBackoff is the link's reconnect backoff for the given options.
func testBackoff(initial, spread, max time.Duration, rand func() float64) *backoff.Backoff {
	o := Options{ReconnectInitial: initial, ReconnectSpread: spread, ReconnectMax: max}
	return &backoff.Backoff{Policy: o.reconnectPolicy(), Rand: rand}
}
