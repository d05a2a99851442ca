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

// waitToken takes a token from lim, waiting for one until ctx ends; its
// deadline is waited out, not refused up front, so a publish that runs out
// of time says context.DeadlineExceeded. now is the link's clock.
func waitToken(ctx context.Context, lim *rate.Limiter, now func() time.Time) error {
	t := now()
	r := lim.ReserveN(t, 1)
	d := r.DelayFrom(t)
	if d == 0 {
		return nil
	}
	if err := backoff.Sleep(ctx, d); err != nil {
		r.CancelAt(now()) // give the token back to later publishes
		return err
	}
	return nil
}
