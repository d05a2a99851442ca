package iot

import (
	"math/rand/v2"
	"time"
)

// quickRetries is how many reconnect attempts come before the spread
// window: their caps are initial and 2×initial.
const quickRetries = 2

// backoff computes reconnect delays with full jitter: each delay is uniform
// in [0, cap). The caps run initial, 2×initial, then spread, doubling up to
// max.
//
// The jump to spread is for the fleet. A broker restart or a network blip
// is over within the quick retries, and one node is back within a second
// or two. An outage that outlasts them has most likely dropped every node
// of the fleet at once; plain doubling from one second would have them
// waiting on caps of 4–8 s after a 10 s outage, so that a sixth of the
// fleet came back in the first second (measured: scripts/bench/fleet).
// With every node's next attempt uniform over spread, N nodes return at
// about N/spread per second whatever the outage's length. Only the Run
// goroutine uses a backoff.
type backoff struct {
	initial, spread, max time.Duration
	rand                 func() float64 // in [0, 1)
	failures             int            // consecutive failed or short-lived connections
}

func newBackoff(initial, spread, max time.Duration) *backoff {
	return &backoff{initial: initial, spread: spread, max: max, rand: rand.Float64}
}

// next returns the delay before the next attempt and counts one failure.
func (b *backoff) next() time.Duration {
	c := b.cap(b.failures)
	b.failures++
	return time.Duration(b.rand() * float64(c))
}

// cap is the cap of the delay after the given number of failures.
func (b *backoff) cap(failures int) time.Duration {
	var c time.Duration
	switch {
	case failures < quickRetries:
		c = b.initial << failures
	default:
		c = b.spread
		for i := quickRetries; i < failures && c < b.max; i++ {
			if c > b.max/2 {
				c = b.max // doubling would pass max, or overflow
			} else {
				c *= 2
			}
		}
	}
	return min(c, b.max)
}

// reset starts the delays again from initial; called once a connection has
// stayed up for backoffResetAfter.
func (b *backoff) reset() { b.failures = 0 }
