package deploy

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgefort/edgefort/updater"
)

func TestScheduleWaits(t *testing.T) {
	const (
		poll  = 30 * time.Minute
		retry = 5 * time.Minute
	)
	down := errors.New("503 service unavailable")
	tooMany := &updater.RetryAfterError{After: 2 * time.Minute}
	tests := []struct {
		name   string
		rand   float64
		steps  []error // nil: a success
		wantLo []time.Duration
		wantHi []time.Duration
	}{
		// Caps 1m, 2m, 4m, then RetryInterval; full jitter.
		{"failures grow from a minute to the retry interval", 0.999, []error{down, down, down, down, down},
			[]time.Duration{59 * time.Second, 119 * time.Second, 239 * time.Second, 299 * time.Second, 299 * time.Second},
			[]time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, retry, retry}},
		{"a success starts them over and waits the poll interval ±20%", 0.999, []error{down, down, nil, down},
			[]time.Duration{59 * time.Second, 119 * time.Second, 35 * time.Minute, 59 * time.Second},
			[]time.Duration{time.Minute, 2 * time.Minute, 36 * time.Minute, time.Minute}},
		{"the low end of the poll interval", 0, []error{nil}, []time.Duration{24 * time.Minute}, []time.Duration{24 * time.Minute}},
		// Never before the Retry-After, spread over half of it again,
		// even where the backoff alone would retry at once.
		{"a 429 waits at least its Retry-After", 0, []error{tooMany}, []time.Duration{2 * time.Minute}, []time.Duration{2 * time.Minute}},
		{"a 429 is spread over half its Retry-After", 0.999, []error{tooMany}, []time.Duration{179 * time.Second}, []time.Duration{3 * time.Minute}},
		{"a 429 without Retry-After backs off like any failure", 0.5, []error{&updater.RetryAfterError{}}, []time.Duration{30 * time.Second}, []time.Duration{30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule(retry, func() float64 { return tt.rand })
			for i, err := range tt.steps {
				var got time.Duration
				if err == nil {
					got = s.ok(poll)
				} else {
					got = s.failed(time.Now(), err, poll)
				}
				if got < tt.wantLo[i] || got > tt.wantHi[i] {
					t.Errorf("wait %d = %v, want in [%v, %v]", i, got, tt.wantLo[i], tt.wantHi[i])
				}
			}
		})
	}
	if got := newSchedule(retry, func() float64 { return 0.999 }).failed(time.Now(), down, time.Second*30); got > 30*time.Second {
		t.Errorf("wait with a 30s poll interval = %v, want at most the poll interval", got)
	}
}

// TestScheduleHoldsChecksForRetryAfter: a check asked for at once (by hand,
// or by an update.check the cloud sent the whole fleet) waits for the end
// of the server's last Retry-After, and only for that: a failure without
// one, or a success, lets it through at once.
func TestScheduleHoldsChecksForRetryAfter(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	later := t0.Add(10 * time.Second)
	tests := []struct {
		name  string
		steps []error // nil: a success
		want  time.Time
	}{
		{"nothing failed", nil, later},
		{"a 429 holds it until its Retry-After ends", []error{&updater.RetryAfterError{After: 2 * time.Minute}}, t0.Add(2 * time.Minute)},
		{"a 429 without Retry-After does not", []error{&updater.RetryAfterError{}}, later},
		{"another failure after the 429 does not", []error{&updater.RetryAfterError{After: 2 * time.Minute}, errors.New("503")}, later},
		{"a success after the 429 does not", []error{&updater.RetryAfterError{After: 2 * time.Minute}, nil}, later},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule(5*time.Minute, func() float64 { return 0.5 })
			for _, err := range tt.steps {
				if err == nil {
					s.ok(time.Hour)
				} else {
					s.failed(t0, err, time.Hour)
				}
			}
			if got := s.earliest(later); !got.Equal(tt.want) {
				t.Errorf("a check asked for at %v may go at %v, want %v", later.Format(time.TimeOnly), got.Format(time.TimeOnly), tt.want.Format(time.TimeOnly))
			}
		})
	}
}

// TestPollerFleetAfterOutage simulates, on a virtual clock, a fleet of
// pollers that start together (a site's power back) while the Mender
// server is down for 20 minutes, each timed by the Poller's own schedule:
// once the server is back, no second carries more than 1% of the fleet's
// checks, and every node has checked successfully within a retry interval
// and a bit. With the jitter taken out (every draw the same), the same
// fleet polls in step: the simulation shows what the jitter is for.
func TestPollerFleetAfterOutage(t *testing.T) {
	const (
		nodes  = 10000
		poll   = DefaultPollInterval
		retry  = DefaultRetryInterval
		outage = 20 * time.Minute
	)
	run := func(rand func() float64) (peak int, lastOK time.Duration) {
		perSecond := map[int]int{}
		for range nodes {
			s := newSchedule(retry, rand)
			at := time.Duration(0) // all start together
			for at < outage {
				at += s.failed(time.Unix(0, 0).Add(at), errors.New("503"), poll)
			}
			perSecond[int(at/time.Second)]++ // the first check after the outage succeeds
			lastOK = max(lastOK, at)
			at += s.ok(poll)
			perSecond[int(at/time.Second)]++ // and the next one is spread too
		}
		for sec, n := range perSecond {
			if time.Duration(sec)*time.Second >= outage {
				peak = max(peak, n)
			}
		}
		return peak, lastOK
	}
	rng := rand.New(rand.NewPCG(3, 4))
	peak, lastOK := run(rng.Float64)
	t.Logf("busiest second after the outage: %d of %d checks; last node back at %v", peak, nodes, lastOK.Round(time.Second))
	if peak > nodes/100 {
		t.Errorf("busiest second after the outage carried %d checks, want at most %d (1%% of the fleet)", peak, nodes/100)
	}
	if lastOK > outage+retry+time.Minute {
		t.Errorf("last node checked at %v, want within %v of the outage's end", lastOK, retry+time.Minute)
	}
	if lockstep, _ := run(func() float64 { return 0.5 }); lockstep < nodes/2 {
		t.Errorf("without jitter the busiest second carried %d checks; the simulation no longer shows the fleet in step", lockstep)
	}
}
