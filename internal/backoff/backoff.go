// Package backoff owns the retry delays of every loop in edgefort: the
// supervisor's restarts, the IoT link's reconnects, the outbox's resends,
// the control-plane client's retries and the download's resumes.
//
// A Policy is the curve: caps that double from Initial up to Max, with an
// optional jump to Spread after a few quick retries, and jitter drawn
// uniformly between a floor share of the cap and the cap. A Backoff walks
// that curve for one loop and starts over only once a connection has stayed
// up for the grace period (cloudflared's reset), so a flapping link keeps
// slowing down. A failure the service refused for its rate limits
// (Backoff.Throttled) skips the quick retries and may double past Max up
// to ThrottledMax, so that a fleet too large for the service's rate keeps
// widening until it fits. Sleep waits a delay or until the context ends.
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is a backoff curve. Its zero value waits not at all; callers fill
// in Initial and Max from their own configuration and validate it there,
// where the field names the user knows are.
type Policy struct {
	// Initial is the cap of the first delay. Caps double from it.
	Initial time.Duration
	// Max caps every delay. It is at least Initial.
	Max time.Duration
	// Quick is how many delays have caps doubling from Initial before the
	// cap jumps to Spread. It matters only with a Spread.
	Quick int
	// Spread, if set, is the cap of delay Quick+1; later caps double from
	// it up to Max. An outage that outlasts the quick retries has most
	// likely dropped a whole fleet at once; with every node's next attempt
	// uniform over Spread, N nodes return at about N/Spread per second.
	// Zero means plain doubling from Initial.
	Spread time.Duration
	// Floor is the share of the cap every delay keeps, in [0, 1]: 0 is
	// full jitter (uniform in [0, cap]); 0.5 keeps at least half the cap,
	// so a crashing component never restarts in a tight loop; 1 is no
	// jitter at all.
	Floor float64
	// Grace is how long a connection must stay up (from Backoff.Up to the
	// next Backoff.Next) for the delays to start over from Initial. Zero
	// means only Reset starts them over.
	Grace time.Duration
	// ThrottledMax caps the delays that follow a throttled failure
	// (Backoff.Throttled); it is at least Max, and zero means Max. A
	// service that refuses connects above a rate of L per second takes a
	// fleet of N nodes whose attempts are uniform over a window W at about
	// N/W per second, so the window must reach N/L before the fleet fits:
	// a higher cap lets larger fleets converge, at the price of a longer
	// wait for the unluckiest node.
	ThrottledMax time.Duration
}

// Cap returns the cap of the delay that follows n consecutive failures
// (n from 0).
func (p Policy) Cap(n int) time.Duration {
	base, k := p.Initial, n
	if p.Spread > 0 && n >= p.Quick {
		base, k = p.Spread, n-p.Quick
	}
	return min(double(base, k, p.Max), p.Max)
}

// ThrottledCap returns the cap of the delay that follows a throttled
// failure when n consecutive failures came before it (n from 0): the
// quick retries are skipped (the service is up and said no, so retrying at
// once only adds to its load), and caps double from Spread (or Initial)
// up to ThrottledMax.
func (p Policy) ThrottledCap(n int) time.Duration {
	limit := max(p.ThrottledMax, p.Max)
	base, k := p.Initial, n
	if p.Spread > 0 {
		base, k = p.Spread, max(n-p.Quick, 0)
	}
	return min(double(base, k, limit), limit)
}

// Delay returns the delay after n consecutive failures for a jitter draw r
// in [0, 1).
func (p Policy) Delay(n int, r float64) time.Duration { return p.jitter(p.Cap(n), r) }

// ThrottledDelay returns the delay after a throttled failure that followed
// n consecutive failures, for a jitter draw r in [0, 1).
func (p Policy) ThrottledDelay(n int, r float64) time.Duration {
	return p.jitter(p.ThrottledCap(n), r)
}

// jitter draws a delay under cap c, keeping the Floor share of it.
func (p Policy) jitter(c time.Duration, r float64) time.Duration {
	if c <= 0 {
		return 0
	}
	lo := time.Duration(p.Floor * float64(c))
	return lo + time.Duration(math.Round(r*float64(c-lo)))
}

// double doubles d k times, stopping at limit without overflowing.
func double(d time.Duration, k int, limit time.Duration) time.Duration {
	for i := 0; i < k && d < limit; i++ {
		if d > limit/2 {
			return limit // doubling would pass limit, or overflow
		}
		d *= 2
	}
	return d
}

// Backoff walks a Policy for one loop. Its zero value with a Policy set is
// ready to use. It is not safe for concurrent use: the loop's goroutine
// owns it.
type Backoff struct {
	Policy
	// Rand returns the jitter draw in [0, 1). Nil means math/rand/v2.
	Rand func() float64
	// Now is the clock the grace period is measured on. Nil means
	// time.Now.
	Now func() time.Time

	failures int       // consecutive failures counted by Next
	upAt     time.Time // when the current connection came up; zero if none
}

// Up records that the connection (or the component) is up from now on.
// The next call of Next starts the delays over if Grace has passed by then.
func (b *Backoff) Up() { b.upAt = b.now() }

// Next counts a failure and returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	b.settle()
	d := b.Delay(b.failures, b.draw())
	b.failures++
	return d
}

// Throttled counts a failure the service refused for its rate limits (a
// throttled or refused connect) and returns the delay before the next
// attempt: past the quick retries, with caps that double up to
// ThrottledMax. Every consecutive throttled failure doubles the cap again.
func (b *Backoff) Throttled() time.Duration {
	b.settle()
	n := b.failures
	if b.Spread > 0 {
		n = max(n, b.Quick) // the quick retries are skipped, not just this one
	}
	d := b.ThrottledDelay(n, b.draw())
	b.failures = n + 1
	return d
}

// settle ends the connection recorded by Up, starting the delays over if
// it lasted the grace period.
func (b *Backoff) settle() {
	if b.upAt.IsZero() {
		return
	}
	if b.Grace > 0 && b.now().Sub(b.upAt) >= b.Grace {
		b.failures = 0
	}
	b.upAt = time.Time{}
}

func (b *Backoff) draw() float64 {
	if b.Rand != nil {
		return b.Rand()
	}
	return rand.Float64()
}

// Reset starts the delays over from Initial, for progress that needs no
// grace period (a send that was acknowledged, a connection retired on
// purpose).
func (b *Backoff) Reset() {
	b.failures = 0
	b.upAt = time.Time{}
}

// Failures is the number of consecutive failures counted so far.
func (b *Backoff) Failures() int { return b.failures }

// Wait counts a failure and sleeps its delay, or until ctx ends.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

func (b *Backoff) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Sleep waits d, or until ctx ends and then returns its cause. A d of zero
// or less returns at once, with ctx's cause if it has ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
