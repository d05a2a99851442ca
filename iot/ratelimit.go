package iot

import (
	"context"
	"sync"
	"time"
)

// tokenBucket allows rate events per second on average and bursts of up
// to burst. It keeps the link within AWS's per-connection publish rate.
type tokenBucket struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst int, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst), now: now}
}

// take removes a token if there is one; otherwise it returns how long
// until there will be.
func (b *tokenBucket) take() (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second)), false
}

// wait blocks until it can take a token or ctx ends.
func (b *tokenBucket) wait(ctx context.Context) error {
	for {
		d, ok := b.take()
		if ok {
			return nil
		}
		t := time.NewTimer(max(d, time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
