package outbox

import (
	"context"
	"time"
)

// backoffPolicy computes the delays between failed sends. Run owns one; it
// is not safe for concurrent use.
type backoffPolicy struct {
	cfg      Backoff        // validated, defaults set
	rand     func() float64 // in [0, 1)
	failures int            // consecutive failures so far
}

// next counts a failure and returns how long to wait before the next send:
// uniform in [0, nominal), nominal being cfg.Initial doubled per earlier
// consecutive failure, capped at cfg.Max.
func (p *backoffPolicy) next() time.Duration {
	d := p.cfg.Initial
	for i := 0; i < p.failures && d < p.cfg.Max; i++ {
		if d > p.cfg.Max/2 {
			d = p.cfg.Max // doubling would pass Max, or overflow
		} else {
			d *= 2
		}
	}
	p.failures++
	return time.Duration(p.rand() * float64(d))
}

// reset starts the sequence over after a send that made progress.
func (p *backoffPolicy) reset() { p.failures = 0 }

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
