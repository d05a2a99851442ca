package deploy

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/edgefort/edgefort/internal/backoff"
	"github.com/edgefort/edgefort/updater"
)

// pollJitter is the share of a poll interval by which a wait is spread
// either way: a fleet that started together (a site's power back, a mass
// reboot) would otherwise poll in the same second for ever.
const pollJitter = 0.2

// retryStart is the cap of the first retry after a failed call, as the
// Mender client backs off from a minute (capped by RetryInterval).
const retryStart = time.Minute

// schedule times one kind of call (deployment checks, or inventory): the
// wait after a success, and after consecutive failures. It is apart from
// the Poller so that a simulated fleet runs the same code
// (TestPollerFleetAfterOutage). Not safe for concurrent use: the Poller's
// loop owns it.
//
// After a failure the waits grow with full jitter from a minute to
// RetryInterval (never more than the poll interval), so that a fleet
// whose calls failed together (the server's outage) comes back spread
// over the window rather than all at RetryInterval. A 429 is never
// retried before its Retry-After, and a fleet told the same Retry-After is
// spread over half of it again. A success starts the failures over and
// waits the poll interval give or take pollJitter.
type schedule struct {
	bo   backoff.Backoff
	rand func() float64
	// notBefore is when the server's last Retry-After ends; zero when the
	// last call was not answered 429. A check asked for by hand or by the
	// cloud waits for it too: a fleet told to check at once (one
	// update.check sent to every node) must not hit a server that has just
	// said it is overloaded.
	notBefore time.Time
}

func newSchedule(retry time.Duration, rand func() float64) *schedule {
	p := backoff.Policy{Initial: min(retryStart, retry), Max: retry}
	return &schedule{bo: backoff.Backoff{Policy: p, Rand: rand}, rand: rand}
}

// ok returns the wait after a successful call that asks to come back
// after wait.
func (s *schedule) ok(wait time.Duration) time.Duration {
	s.bo.Reset()
	s.notBefore = time.Time{}
	return time.Duration(float64(wait) * (1 - pollJitter + 2*pollJitter*s.draw()))
}

// failed returns the wait after a call that failed at now, at most poll
// (the Retry-After of a 429 excepted).
func (s *schedule) failed(now time.Time, err error, poll time.Duration) time.Duration {
	d := min(s.bo.Next(), poll)
	s.notBefore = time.Time{}
	var ra *updater.RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		d = max(d, ra.After+time.Duration(s.draw()*float64(ra.After)/2))
		s.notBefore = now.Add(ra.After)
	}
	return d
}

// earliest returns when a call asked for at t may be made: t, or the end
// of the server's last Retry-After if that is later.
func (s *schedule) earliest(t time.Time) time.Time {
	if t.Before(s.notBefore) {
		return s.notBefore
	}
	return t
}

func (s *schedule) draw() float64 {
	if s.rand != nil {
		return s.rand()
	}
	return rand.Float64()
}
