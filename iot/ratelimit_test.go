package iot

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWaitToken drives the publish limiter on an injected clock: a burst
// of PublishRate goes at once; past it a publish waits on that clock, so
// one whose ctx ends first neither goes nor takes a token from later ones.
func TestWaitToken(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	lim := newPublishLimiter()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range PublishRate {
		// An ended ctx does not matter while tokens are left.
		if err := waitToken(ended, lim, clock); err != nil {
			t.Fatalf("publish %d of the burst: %v", i, err)
		}
	}
	for i := range 3 {
		if err := waitToken(ended, lim, clock); !errors.Is(err, context.Canceled) {
			t.Fatalf("publish %d past the burst = %v, want context.Canceled", i, err)
		}
	}
	// A frozen clock never refills, whatever the real time: a publish
	// with a deadline waits it out (the link's rate-limit test relies on
	// this).
	short, cancelShort := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancelShort()
	if err := waitToken(short, lim, clock); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish on a frozen clock = %v, want context.DeadlineExceeded", err)
	}
	// The refused ones took nothing: one rate interval later exactly one
	// more goes at once.
	now = now.Add(time.Second / PublishRate)
	if err := waitToken(ended, lim, clock); err != nil {
		t.Fatalf("publish after one interval: %v", err)
	}
	if err := waitToken(ended, lim, clock); !errors.Is(err, context.Canceled) {
		t.Fatalf("second publish after one interval = %v, want context.Canceled", err)
	}
	// An hour refills the burst, not beyond.
	now = now.Add(time.Hour)
	var ok int
	for range 2 * PublishRate {
		if waitToken(ended, lim, clock) == nil {
			ok++
		}
	}
	if ok != PublishRate {
		t.Errorf("after an hour %d publishes went at once, want %d", ok, PublishRate)
	}
}
