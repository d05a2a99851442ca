package updater

import (
	"context"
	"fmt"
	"math"

	"golang.org/x/time/rate"
)

// byteLimiter limits a byte stream to a rate in bytes per second with
// bursts of one second's worth (at least 1 KiB), on the download's Clock.
// Callers read first and then wait for what they took, so the limiter may
// go into debt; the debt is slept off at the rate.
type byteLimiter struct {
	lim   *rate.Limiter
	clock Clock
}

func newByteLimiter(bytesPerSecond int64, clock Clock) *byteLimiter {
	burst := min(max(bytesPerSecond, 1<<10), math.MaxInt32) // an int on 32-bit ARM too
	return &byteLimiter{lim: rate.NewLimiter(rate.Limit(bytesPerSecond), int(burst)), clock: clock}
}

// burst is the most bytes one wait may take.
func (b *byteLimiter) burst() int64 { return int64(b.lim.Burst()) }

// wait takes n bytes' worth of tokens, sleeping while the limiter is in
// debt. It returns ctx.Err() if ctx ends first.
func (b *byteLimiter) wait(ctx context.Context, n int64) error {
	now := b.clock.Now()
	r := b.lim.ReserveN(now, int(n))
	if !r.OK() {
		return fmt.Errorf("rate limit: %d bytes at once, over the burst of %d", n, b.burst())
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	return b.clock.Sleep(ctx, d)
}
