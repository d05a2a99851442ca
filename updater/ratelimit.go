package updater

import (
	"context"
	"time"
)

// tokenBucket limits a byte stream to rate bytes per second with bursts of
// up to burst bytes (one second's worth, at least 1 KiB). Callers read
// first and then wait for what they took, so the bucket may go into debt;
// the debt is slept off at the rate.
type tokenBucket struct {
	rate   float64 // bytes per second
	burst  int64
	clock  Clock
	tokens float64
	last   time.Time
}

func newTokenBucket(rate int64, clock Clock) *tokenBucket {
	burst := max(rate, 1<<10)
	return &tokenBucket{rate: float64(rate), burst: burst, clock: clock, tokens: float64(burst), last: clock.Now()}
}

// wait takes n bytes' worth of tokens, sleeping while the bucket is in
// debt. It returns ctx.Err() if ctx ends first.
func (b *tokenBucket) wait(ctx context.Context, n int64) error {
	now := b.clock.Now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(b.burst), b.tokens+el.Seconds()*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return nil
	}
	d := time.Duration(-b.tokens / b.rate * float64(time.Second))
	return b.clock.Sleep(ctx, d)
}
