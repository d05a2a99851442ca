package iot

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/edgefort/edgefort/internal/backoff"
)

// newPublishLimiter keeps the link within AWS's per-connection publish
// rate: PublishRate messages a second on average, bursts of as many.
func newPublishLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(PublishRate), PublishRate)
}

// waitToken takes a token from lim, waiting for one until ctx ends. It
// waits on the link's clock now: it looks again after the time the missing
// share of a token takes at the rate, and a publish that runs out of time
// says so with ctx's error (context.DeadlineExceeded), not refused up
// front as rate.Limiter.Wait would.
func waitToken(ctx context.Context, lim *rate.Limiter, now func() time.Time) error {
	for {
		t := now()
		if lim.AllowN(t, 1) {
			return nil
		}
		missing := 1 - lim.TokensAt(t)
		d := time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
		if err := backoff.Sleep(ctx, max(d, time.Millisecond)); err != nil {
			return err
		}
	}
}
