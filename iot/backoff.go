package iot

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnect delays: exponential from initial, capped at
// max, with full jitter (uniform in [0, cap)) so that a fleet that lost its
// broker at once does not come back at once. Only the Run goroutine uses it.
type backoff struct {
	initial, max time.Duration
	rand         func() float64 // in [0, 1)
	failures     int            // consecutive failed or short-lived connections
}

func newBackoff(initial, max time.Duration) *backoff {
	return &backoff{initial: initial, max: max, rand: rand.Float64}
}

// next returns the delay before the next attempt and counts one failure.
func (b *backoff) next() time.Duration {
	c := b.initial
	for i := 0; i < b.failures && c < b.max; i++ {
		if c > b.max/2 {
			c = b.max // doubling would pass max, or overflow
		} else {
			c *= 2
		}
	}
	c = min(c, b.max)
	b.failures++
	return time.Duration(b.rand() * float64(c))
}

// reset starts the delays again from initial; called once a connection has
// stayed up for backoffResetAfter.
func (b *backoff) reset() { b.failures = 0 }
